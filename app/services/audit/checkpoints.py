"""Signed checkpoints: the service's key, the public JWK set, and signing the chain's head."""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from joserfc.jwk import ECKey, KeySet
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.domain import chain, proof
from app.domain.vocabulary import Action, Method
from app.models import ConsentEvent, utcnow
from app.services.consent import ledger

SYSTEM_ACT = ledger.Act(actor="system:audit", method=Method.SYSTEM)


@dataclass(frozen=True)
class SigningKeys:
    """The key that signs now, and the retired ones whose checkpoints must still verify."""

    current: ECKey
    retired: tuple[ECKey, ...] = ()

    def jwks(self) -> dict[str, Any]:
        return public_jwks(self.current, *self.retired)

    def verifying(self) -> KeySet:
        """The public halves, for checking checkpoints signed by any key of the ring."""
        return proof.key_set(self.jwks())


def load_keys(path: Path, retired: Sequence[Path] = (), *, create: bool = True) -> SigningKeys:
    """The ring, read once at start-up; `create` makes the current key if absent (development)."""
    if not create and not path.is_file():
        raise FileNotFoundError(f"no signing key at {path}")
    old = tuple(ECKey.import_key(json.loads(p.read_text())) for p in retired)
    return SigningKeys(signing_key(path), old)


def signing_key(path: Path) -> ECKey:
    """The private P-256 key at `path`, made there (mode 0600) the first time it is needed.

    Several gunicorn workers may start at once on an empty instance folder: one of them makes
    the key, and the others read the one it made.
    """
    try:
        return new_key(path) if not path.exists() else _read_key(path)
    except FileExistsError:
        return _read_key(path)


def _read_key(path: Path) -> ECKey:
    return ECKey.import_key(json.loads(path.read_text()))


def new_key(path: Path) -> ECKey:
    """A new private key written to `path` (mode 0600); refuses to overwrite one.

    The key is written whole to a file of its own, then linked into place: nobody reads a
    half-written key, and of two processes racing, the second gets FileExistsError.
    """
    key = ECKey.generate_key("P-256", auto_kid=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    draft = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w") as handle:
            handle.write(json.dumps(key.as_dict(private=True)))
        os.link(draft, path)
    finally:
        draft.unlink()
    return key


def public_jwks(*keys: ECKey) -> dict[str, Any]:
    """The verification keys as a JWK set (what /.well-known/jwks.json serves)."""
    return {
        "keys": [
            key.as_dict(private=False) | {"use": "sig", "alg": proof.ALGORITHM} for key in keys
        ]
    }


@dataclass(frozen=True)
class Checkpoint:
    seq: int  # the checkpoint event's own seq
    signed_seq: int
    signed_hash: str
    occurred_at: datetime
    jws: str


def create(session: Session, key: ECKey, *, now: datetime | None = None) -> Checkpoint:
    """Sign the head as it is now and append that signature as a checkpoint event."""
    now = now or utcnow()
    head = ledger.lock(session)
    checkpoint = _append(session, head, key, now)
    session.commit()
    return checkpoint


def create_if_due(
    session: Session, key: ECKey, every: int, *, now: datetime | None = None
) -> Checkpoint | None:
    """A checkpoint once `every` events have been written since the last one, else None."""
    now = now or utcnow()
    head = ledger.lock(session)
    last = session.scalar(
        select(func.max(ConsentEvent.seq)).where(
            ConsentEvent.chain_id == head.chain_id, ConsentEvent.action == str(Action.CHECKPOINT)
        )
    )
    is_due = head.last_seq - (last or head.base_seq) >= max(every, 1)
    checkpoint = _append(session, head, key, now) if is_due else None
    session.commit()
    return checkpoint


def append_in(session: Session, head: Any, key: ECKey, now: datetime) -> Checkpoint:
    """A checkpoint inside another use case's transaction (retention signs its new base)."""
    return _append(session, head, key, now)


def _append(session: Session, head: Any, key: ECKey, now: datetime) -> Checkpoint:
    claims = proof.checkpoint_claims(
        head.chain_id,
        head.last_seq,
        head.last_hash,
        head.base_seq,
        head.base_hash,
        chain.format_time(now),
    )
    token = proof.sign(claims, key)
    signed_seq, signed_hash = head.last_seq, head.last_hash
    (event,) = ledger.append(
        session,
        head,
        SYSTEM_ACT,
        [
            ledger.Draft(
                Action.CHECKPOINT,
                details={"seq": signed_seq, "hash": signed_hash, "jws": token},
            )
        ],
        now=now,
    )
    return Checkpoint(event["seq"], signed_seq, signed_hash, now, token)


def listing(session: Session, limit: int = 100) -> list[Checkpoint]:
    rows = session.scalars(
        select(ConsentEvent)
        .where(ConsentEvent.action == str(Action.CHECKPOINT))
        .order_by(ConsentEvent.seq.desc())
        .limit(limit)
    )
    found = []
    for row in rows:
        details = json.loads(row.details or "{}")
        found.append(
            Checkpoint(row.seq, details["seq"], details["hash"], row.occurred_at, details["jws"])
        )
    return found
