"""What flows out: which ledger events are changes, their wire names, and the webhook rules.

No framework and no session here: the feed, the webhook outbox and their tests share these.
"""

from __future__ import annotations

import base64
import ipaddress
import secrets
from collections.abc import Iterable, Mapping, Sequence
from datetime import timedelta
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from app.domain.chain import format_utc
from app.domain.errors import InvalidWebhookError
from app.domain.vocabulary import Action

# Bookkeeping of the ledger itself, not a change about a person: never in the feed.
NOT_CHANGES = frozenset(
    {
        Action.NOTICE_PUBLISHED,
        Action.CHECKPOINT,
        Action.RETENTION_RUN,
        Action.WEBHOOK_DISABLED,
        Action.IMPORT_RECORDED,  # a purchased list's row: recorded, never consent
        Action.REPERMISSION,  # a confirmation mail asked for; nothing about the choice changed
    }
)
CONSENT_ACTIONS = frozenset(
    {
        Action.REQUEST,
        Action.GRANT,
        Action.CONFIRM,
        Action.WITHDRAW,
        Action.UNSUBSCRIBE_ALL,
        Action.SUPPRESSION_LIFTED,
    }
)
MAX_CURSOR = 2**62
ITEM_COLUMNS = (
    "seq",
    "occurred_at",
    "subject_id",
    "channel",
    "category",
    "purpose",
    "status",
    "action",
)


class EventType(StrEnum):
    CONSENT_CHANGED = "consent.changed"
    SUBJECT_ERASED = "subject.erased"
    SUBJECT_CHANGED = "subject.changed"  # identifiers linked, unlinked or merged


def is_change(action: str) -> bool:
    return action not in NOT_CHANGES


def event_type(action: str) -> EventType:
    if action == Action.ERASE:
        return EventType.SUBJECT_ERASED
    if action in CONSENT_ACTIONS:
        return EventType.CONSENT_CHANGED
    return EventType.SUBJECT_CHANGED


def cursor(seq: int) -> str:
    """The cursor is the event's place in the chain: it never changes and never repeats."""
    return str(seq)


_ERASE = str(Action.ERASE)


def identifiers_by_subject(rows: Iterable[Sequence[str]]) -> dict[str, dict[str, list[str]]]:
    """`(subject_id, kind, value)` rows, in the order they are to be listed, as each subject's
    identifiers by kind (email, phone and external_id always there, empty or not)."""
    held: dict[str, dict[str, list[str]]] = {}
    for subject_id, kind, value in rows:
        found = held.get(subject_id)
        if found is None:
            found = held[subject_id] = {"email": [], "phone": [], "external_id": []}
        found.setdefault(kind, []).append(value)
    return held


def change_items(
    events: Iterable[Sequence[Any]], held: Mapping[str, dict[str, list[str]]]
) -> list[dict[str, Any]]:
    """The changes items of event rows in `ITEM_COLUMNS` order (`occurred_at` naive in UTC), each
    with its subject's identifiers from `held` (`identifiers_by_subject`). An erasure names no
    identifier, whatever `held` says. Items of one subject share its identifiers: read them,
    do not change them."""
    items: list[dict[str, Any]] = []
    append = items.append
    for seq, occurred_at, subject_id, channel, category, purpose, status, action in events:
        if action == _ERASE:
            action, found = "erased", None
        else:
            found = held.get(subject_id)
        append(
            {
                "cursor": str(seq),
                "occurred_at": format_utc(occurred_at),
                "subject_id": subject_id,
                "identifiers": found or {"email": [], "phone": [], "external_id": []},
                "channel": channel,
                "category": category,
                "purpose": purpose,
                "status": status,
                "action": action,
            }
        )
    return items


# Growing delays between attempts (Standard Webhooks' advice, stretched past 24 h in total):
# the first retry comes 5 s after the first failure; after the last, the receiver is disabled.
RETRY_DELAYS: Sequence[timedelta] = tuple(
    timedelta(seconds=s) for s in (5, 30, 120, 600, 1800, 3600, 7200, 14400, 28800, 36000)
)


def retry_delay(attempts: int) -> timedelta | None:
    """The wait after `attempts` failed tries, or None once they cover the whole window."""
    return RETRY_DELAYS[attempts - 1] if attempts <= len(RETRY_DELAYS) else None


def new_secret() -> str:
    """A Standard Webhooks secret: whsec_ and 24 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def validate_url(url: str, *, allow_private: bool) -> str:
    """A receiver URL: http(s) with a host and no credentials; plain http only for private use."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise InvalidWebhookError("Not a valid URL.", {"url": [str(error)]}) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidWebhookError("Not an http(s) URL.", {"url": ["Must be an https URL."]})
    if parts.scheme == "http" and not allow_private:
        raise InvalidWebhookError(
            "Webhook receivers must use https.", {"url": ["Must be an https URL."]}
        )
    if parts.username or parts.password:
        raise InvalidWebhookError("No credentials in the URL.", {"url": ["Remove user:pass@."]})
    if port == 0:
        raise InvalidWebhookError("Not a valid port.", {"url": ["Port 0 cannot be reached."]})
    return url


def is_refused_address(raw: str) -> bool:
    """Loopback, private, link-local (cloud metadata's 169.254.169.254), shared, reserved,
    multicast: anything but a public unicast address, IPv4-mapped IPv6 included."""
    address = ipaddress.ip_address(raw.split("%", 1)[0])
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return not address.is_global or address.is_multicast
