"""API clients: created with a secret shown once, stored only as a hash, revocable."""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.domain.errors import NotFoundError, UnknownTopicError
from app.domain.vocabulary import ALL_SCOPES
from app.models import OAuthClient, utcnow

_ITERATIONS = 100_000  # PBKDF2: a token request is rare, a stolen table should stay useless


@dataclass(frozen=True)
class Credentials:
    client_id: str
    client_secret: str
    scopes: list[str]


def hash_secret(secret: str, *, salt: str | None = None, iterations: int = _ITERATIONS) -> str:
    salt = salt or secrets.token_hex(16)
    digest = hashlib.pbkdf2_hmac("sha256", secret.encode(), salt.encode(), iterations).hex()
    return f"pbkdf2_sha256${iterations}${salt}${digest}"


def check_secret(stored: str, secret: str) -> bool:
    try:
        _, iterations, salt, _digest = stored.split("$")
        candidate = hash_secret(secret, salt=salt, iterations=int(iterations))
    except ValueError:
        return False
    return hmac.compare_digest(candidate, stored)


@functools.cache
def _nobodys_hash() -> str:
    return hash_secret(secrets.token_urlsafe(32))


def check_unknown_secret(secret: str) -> bool:
    """False, after the same work `check_secret` does for a real client (no timing oracle)."""
    check_secret(_nobodys_hash(), secret)
    return False


def parse_scopes(raw: str | Iterable[str]) -> list[str]:
    scopes = raw.split() if isinstance(raw, str) else list(raw)
    unknown = sorted(set(scopes) - set(ALL_SCOPES))
    if unknown:
        raise UnknownTopicError(
            f"Unknown scopes: {', '.join(unknown)}.", {"scopes": [f"Unknown: {unknown}"]}
        )
    return sorted(set(scopes))


def create(
    session: Session,
    name: str,
    scopes: str | Iterable[str],
    *,
    now: datetime | None = None,
    iterations: int = _ITERATIONS,
) -> Credentials:
    chosen = parse_scopes(scopes)
    client_id = "cc_" + secrets.token_urlsafe(12)
    secret = secrets.token_urlsafe(32)
    session.add(
        OAuthClient(
            client_id=client_id,
            name=name,
            secret_hash=hash_secret(secret, iterations=iterations),
            scopes=" ".join(chosen),
            created_at=now or utcnow(),
        )
    )
    session.commit()
    return Credentials(client_id, secret, chosen)


def rotate_secret(session: Session, client_id: str) -> Credentials:
    client = session.get(OAuthClient, client_id)
    if client is None or client.revoked_at is not None:
        raise NotFoundError(f"No active client {client_id}.")
    secret = secrets.token_urlsafe(32)
    client.secret_hash = hash_secret(secret)
    session.commit()
    return Credentials(client_id, secret, client.scopes.split())


def revoke(session: Session, client_id: str, *, now: datetime | None = None) -> None:
    client = session.get(OAuthClient, client_id)
    if client is None:
        raise NotFoundError(f"No client {client_id}.")
    client.revoked_at = client.revoked_at or now or utcnow()
    session.commit()


def active_ids(session: Session) -> set[str]:
    return set(
        session.scalars(select(OAuthClient.client_id).where(OAuthClient.revoked_at.is_(None)))
    )


def is_active(session: Session, client_id: str) -> bool:
    client = session.get(OAuthClient, client_id)
    return client is not None and client.revoked_at is None
