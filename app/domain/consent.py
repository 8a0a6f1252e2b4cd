"""The consent decision: may this subject be sent this category on this channel?

Current standings are one row per topic (see `Topic`); the rules below turn them into an
answer. Precedence, first match wins; anything not granted is denied:

1. ``suppressed``       the identifier was erased and no fresh confirmed opt-in lifted that;
2. ``transactional``    the category is transactional: no opt-in governs it;
3. ``no_record``        the subject is unknown;
4. ``unsubscribed_all`` "unsubscribe from all" is newer than the grant for this pair
                        (a later grant of the pair lifts it for that pair only);
5. ``withdrawn``        the channel or the pair was withdrawn;
6. ``pending_confirmation`` the channel or the pair awaits double opt-in;
7. ``no_record``        nothing was ever granted for the channel or the pair;
8. ``expired``          the pair's grant is older than the maximum consent age;
9. ``granted``          the channel opt-in is confirmed and the pair granted.

Purposes (processing such as personalization) follow the same rules without 2 and 4:
"unsubscribe from all" concerns messages, not processing.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from app.domain.catalog import Catalog
from app.domain.vocabulary import LegalBasis, Reason, Status


@dataclass(frozen=True, order=True)
class Topic:
    """What a standing is about. '' means "not applicable" or "the whole of it"."""

    channel: str = ""
    category: str = ""
    purpose: str = ""

    @property
    def is_all_marketing(self) -> bool:
        return not (self.channel or self.category or self.purpose)


ALL_MARKETING = Topic()


def channel_topic(channel: str) -> Topic:
    return Topic(channel=channel)


def pair_topic(channel: str, category: str) -> Topic:
    return Topic(channel=channel, category=category)


def purpose_topic(purpose: str) -> Topic:
    return Topic(purpose=purpose)


@dataclass(frozen=True)
class Standing:
    """The latest event for one topic: its status, position in the chain, and time."""

    status: Status
    seq: int
    occurred_at: datetime
    event_id: str


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: Reason
    event_id: str | None = None  # the event the answer relied on, where there is one


SUPPRESSED = Decision(False, Reason.SUPPRESSED)
TRANSACTIONAL = Decision(True, Reason.TRANSACTIONAL)
NO_RECORD = Decision(False, Reason.NO_RECORD)
INVALID_IDENTIFIER = Decision(False, Reason.INVALID_IDENTIFIER)


def decide_message(
    *,
    is_transactional: bool,
    is_suppressed: bool,
    is_known: bool,
    all_marketing: Standing | None,
    channel: Standing | None,
    pair: Standing | None,
    now: datetime,
    max_age: timedelta | None = None,
) -> Decision:
    if is_suppressed:
        return SUPPRESSED
    if is_transactional:
        return TRANSACTIONAL
    if not is_known:
        return NO_RECORD
    if (
        all_marketing is not None
        and all_marketing.status is Status.WITHDRAWN
        and (pair is None or pair.seq < all_marketing.seq)
    ):
        return Decision(False, Reason.UNSUBSCRIBED_ALL, all_marketing.event_id)
    return _decide_standings((channel, pair), now=now, max_age=max_age)


def decide_purpose(
    *,
    is_suppressed: bool,
    is_known: bool,
    purpose: Standing | None,
    now: datetime,
    max_age: timedelta | None = None,
) -> Decision:
    if is_suppressed:
        return SUPPRESSED
    if not is_known:
        return NO_RECORD
    return _decide_standings((purpose,), now=now, max_age=max_age)


def _decide_standings(
    standings: tuple[Standing | None, ...], *, now: datetime, max_age: timedelta | None
) -> Decision:
    """Rules 5 to 9 over the standings that must all be granted (the last one is the grant)."""
    present = [s for s in standings if s is not None]
    for status, reason in (
        (Status.WITHDRAWN, Reason.WITHDRAWN),
        (Status.PENDING, Reason.PENDING_CONFIRMATION),
    ):
        hits = [s for s in present if s.status is status]
        if hits:
            return Decision(False, reason, max(hits, key=lambda s: s.seq).event_id)
    if len(present) < len(standings):
        return NO_RECORD
    grant = standings[-1]
    assert grant is not None  # all present, checked above
    if max_age is not None and now - grant.occurred_at > max_age:
        return Decision(False, Reason.EXPIRED, grant.event_id)
    return Decision(True, Reason.GRANTED, grant.event_id)


@dataclass(frozen=True)
class PairView:
    channel: str
    category: str
    status: Status | None
    decision: Decision
    updated_at: datetime | None


@dataclass(frozen=True)
class PurposeView:
    purpose: str
    status: Status | None
    decision: Decision
    updated_at: datetime | None


@dataclass(frozen=True)
class PreferencesView:
    """A subject's current preferences: raw standings plus what the check would answer."""

    is_unsubscribed_all: bool
    channels: Mapping[str, Standing | None]
    pairs: list[PairView]
    purposes: list[PurposeView]

    def as_data(self) -> dict[str, Any]:
        """The view as plain data: the API's preferences body and the person's download."""
        return {
            "unsubscribed_all": self.is_unsubscribed_all,
            "channels": [
                {
                    "channel": name,
                    "status": standing.status if standing else None,
                    "updated_at": standing.occurred_at if standing else None,
                }
                for name, standing in self.channels.items()
            ],
            "categories": [
                {
                    "channel": p.channel,
                    "category": p.category,
                    "status": p.status,
                    "updated_at": p.updated_at,
                    "allowed": p.decision.allowed,
                    "reason": p.decision.reason,
                }
                for p in self.pairs
            ],
            "purposes": [
                {
                    "purpose": p.purpose,
                    "status": p.status,
                    "updated_at": p.updated_at,
                    "allowed": p.decision.allowed,
                    "reason": p.decision.reason,
                }
                for p in self.purposes
            ],
        }


def preferences_view(
    catalog: Catalog,
    standings: Mapping[Topic, Standing],
    *,
    is_suppressed: bool,
    now: datetime,
    max_age: timedelta | None = None,
) -> PreferencesView:
    all_marketing = standings.get(ALL_MARKETING)
    pairs = []
    for channel, category in catalog.marketing_pairs():
        pair = standings.get(pair_topic(channel, category))
        decision = decide_message(
            is_transactional=False,
            is_suppressed=is_suppressed,
            is_known=True,
            all_marketing=all_marketing,
            channel=standings.get(channel_topic(channel)),
            pair=pair,
            now=now,
            max_age=max_age,
        )
        status = pair.status if pair else None
        pairs.append(PairView(channel, category, status, decision, _at(pair)))
    purposes = []
    for name in catalog.purposes:
        standing = standings.get(purpose_topic(name))
        decision = decide_purpose(
            is_suppressed=is_suppressed, is_known=True, purpose=standing, now=now, max_age=max_age
        )
        status = standing.status if standing else None
        purposes.append(PurposeView(name, status, decision, _at(standing)))
    return PreferencesView(
        is_unsubscribed_all=bool(all_marketing and all_marketing.status is Status.WITHDRAWN),
        channels={c: standings.get(channel_topic(c)) for c in catalog.channels},
        pairs=pairs,
        purposes=purposes,
    )


def offered_channels(
    catalog: Catalog, held_kinds: Collection[str], view: PreferencesView
) -> frozenset[str]:
    """The channels a preference page offers: those the person can be reached on with what is
    held for them, and those they already chose on (a choice must stay withdrawable)."""
    chosen = {p.channel for p in view.pairs if p.status is not None}
    chosen |= {name for name, standing in view.channels.items() if standing is not None}
    return catalog.reachable_channels(held_kinds) | frozenset(chosen)


def legal_basis(catalog: Catalog, topic: Topic) -> LegalBasis:
    """The legal basis an event on this topic records: the catalog's, consent for a channel."""
    if topic.purpose:
        return catalog.purposes[topic.purpose].legal_basis
    if topic.category:
        return catalog.categories[topic.category].legal_basis
    return LegalBasis.CONSENT


def _at(standing: Standing | None) -> datetime | None:
    return standing.occurred_at if standing else None
