"""One person, many identifiers: which kinds exist, which one a channel reaches, and merges."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from app.domain.consent import ALL_MARKETING, Standing, Topic
from app.domain.errors import InvalidIdentifierError
from app.domain.identifiers import Identifier, identifier, normalize_external_id
from app.domain.vocabulary import IdentifierKind, Status

# A channel's messages go to an identifier of this kind; other channels (push, post) reach
# the person through something the service does not hold.
CONTACT_KIND = {
    "email": IdentifierKind.EMAIL,
    "sms": IdentifierKind.PHONE,
    "phone": IdentifierKind.PHONE,
}

# Least permissive first: where two merged subjects disagree, the earlier one stands.
STRICTNESS = (Status.WITHDRAWN, Status.PENDING, Status.GRANTED)


def parse(
    kind: str, raw: str, *, extra_kinds: Iterable[str] = (), region: str | None = None
) -> Identifier:
    """A normalised identifier of a built-in kind or one the catalog declares."""
    if kind in IdentifierKind.__members__.values():
        return identifier(IdentifierKind(kind), raw, region=region)
    if kind not in set(extra_kinds):
        message = f"Unknown identifier kind {kind!r}."
        raise InvalidIdentifierError(message, {"kind": [message]})
    return Identifier(kind, normalize_external_id(raw))


@dataclass(frozen=True)
class Held:
    """An identifier a subject holds, as far as deciding on a contact point needs it."""

    kind: str
    value: str
    confirmed_at: datetime | None
    added_at: datetime


def contact_for(
    channel: str | None, held: Iterable[Held], *, needs_confirmation: bool
) -> tuple[Held | None, bool]:
    """The contact point to use on a channel, and whether one of that kind exists at all.

    Where double opt-in applies only a confirmed address may be used; the most recently
    confirmed (else most recently added) one is named.
    """
    kind = CONTACT_KIND.get(channel or "")
    if kind is None:
        return None, False
    candidates = [h for h in held if h.kind == kind]
    usable = [h for h in candidates if h.confirmed_at is not None or not needs_confirmation]
    if not usable:
        return None, bool(candidates)
    best = max(usable, key=lambda h: (h.confirmed_at or h.added_at, h.added_at))
    return best, True


def merged_statuses(
    survivor: Mapping[Topic, Standing], other: Mapping[Topic, Standing]
) -> dict[Topic, Status]:
    """The topics whose standing the survivor must change to absorb `other`.

    A topic only the other subject answered carries over; where both answered differently,
    the least permissive answer stands until the person chooses again.
    """
    changes: dict[Topic, Status] = {}
    for topic, theirs in other.items():
        ours = survivor.get(topic)
        if ours is None:
            changes[topic] = theirs.status
        elif ours.status is not theirs.status:
            strictest = min(ours.status, theirs.status, key=STRICTNESS.index)
            if strictest is not ours.status:
                changes[topic] = strictest
    return changes


def needs_all_marketing_again(
    survivor: Mapping[Topic, Standing], other: Mapping[Topic, Standing], written: Iterable[Topic]
) -> bool:
    """An unsubscribe-all either side holds must stay newer than the grants a merge writes
    (a later grant of a pair lifts it for that pair)."""
    held = any(
        s.get(ALL_MARKETING) is not None and s[ALL_MARKETING].status is Status.WITHDRAWN
        for s in (survivor, other)
    )
    return held and any(not t.purpose and not t.is_all_marketing for t in written)
