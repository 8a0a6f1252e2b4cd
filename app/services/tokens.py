"""Signed links (itsdangerous): the one home of every token the service puts in a URL.

Each purpose has its own salt, so a token made for one purpose never opens another. Tokens are
stateless; a single-use purpose is spent by storing the token's hash (`spend`), never the token.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.domain.errors import ExpiredTokenError, InvalidTokenError, UsedTokenError
from app.models import UsedToken, utcnow


class Purpose(StrEnum):
    CONFIRM = "confirm"  # double opt-in: payload {"r": request id}
    PREFERENCES = "preferences"  # the preference page: {"s": subject id}
    UNSUBSCRIBE = "unsubscribe"  # one-click: {"s", "c": channel, "k"?: category, "m"?: message id}
    ACCESS = "access"  # fresh mailbox proof for the security center: {"s", "n": nonce}
    DPO = "dpo"  # reserved for the DPO pages' own tokens


@dataclass(frozen=True)
class Opened:
    payload: dict[str, Any]
    issued_at: datetime

    @property
    def subject_id(self) -> str:
        """The subject the link names (its "s"); InvalidTokenError when it names none."""
        subject_id = self.payload.get("s")
        if not isinstance(subject_id, str):
            raise InvalidTokenError("This link is not valid.")
        return subject_id


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Tokens:
    """Makes and opens signed tokens; `ttl` is how long each purpose's links stay valid."""

    def __init__(self, secret_key: str, ttl: dict[Purpose, timedelta]) -> None:
        self._secret = secret_key
        self._ttl = ttl

    def _serializer(self, purpose: Purpose) -> URLSafeTimedSerializer:
        return URLSafeTimedSerializer(self._secret, salt=f"consent-center:{purpose}")

    def make(self, purpose: Purpose, payload: dict[str, Any]) -> str:
        return str(self._serializer(purpose).dumps(payload))

    def ttl(self, purpose: Purpose) -> timedelta:
        return self._ttl[purpose]

    def open(self, purpose: Purpose, token: str) -> Opened:
        """The payload of a genuine, unexpired token; InvalidTokenError or ExpiredTokenError."""
        serializer = self._serializer(purpose)
        try:
            payload, issued = serializer.loads(
                token, max_age=int(self._ttl[purpose].total_seconds()), return_timestamp=True
            )
        except SignatureExpired as error:
            raise ExpiredTokenError("This link has expired.") from error
        except BadSignature as error:
            raise InvalidTokenError("This link is not valid.") from error
        if not isinstance(payload, dict):
            raise InvalidTokenError("This link is not valid.")
        return Opened(payload, issued.replace(tzinfo=UTC) if issued.tzinfo is None else issued)

    def open_expired(self, purpose: Purpose, token: str) -> dict[str, Any] | None:
        """The payload of a genuine token whatever its age (to offer a new link); else None."""
        is_genuine, payload = self._serializer(purpose).loads_unsafe(token)
        return payload if is_genuine and isinstance(payload, dict) else None


def spend(
    session: Session,
    token: str,
    purpose: Purpose,
    expires_at: datetime,
    *,
    now: datetime | None = None,
) -> None:
    """Mark a single-use token as used, in the caller's transaction; UsedTokenError if it was.

    A concurrent spend of the same token fails the flush; the caller's use case then fails as a
    whole (its transaction is unusable), and the edge rolls it back.
    """
    digest = token_hash(token)
    if session.get(UsedToken, digest) is not None:
        raise UsedTokenError("This link was already used.")
    session.add(
        UsedToken(
            token_hash=digest, purpose=str(purpose), used_at=now or utcnow(), expires_at=expires_at
        )
    )
    try:
        session.flush()
    except IntegrityError as error:  # spent by a concurrent request a moment ago
        raise UsedTokenError("This link was already used.") from error
