"""Properties under hostile input: the decision denies by default, and normalisation of any
text either yields a stable canonical form or a clean InvalidIdentifierError."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from app.domain.consent import (
    Standing,
    Topic,
    decide_message,
    decide_purpose,
)
from app.domain.errors import InvalidIdentifierError
from app.domain.identifiers import (
    identifier,
    normalize_email,
    normalize_phone,
)
from app.domain.vocabulary import IdentifierKind, Reason, Status

NOW = datetime(2026, 6, 1, tzinfo=UTC)
# E.164: a country code and at most 15 digits in all. No minimum: phonenumbers' metadata calls
# some short national numbers valid (Germany's +491640, found by this test's draw).
E164 = re.compile(r"\+[1-9]\d{3,14}")

standings = st.builds(
    Standing,
    status=st.sampled_from(Status),
    seq=st.integers(min_value=1, max_value=10_000),
    occurred_at=st.integers(0, 26 * 365 * 86_400).map(lambda s: NOW - timedelta(seconds=s)),
    event_id=st.uuids().map(str),
)
maybe = st.none() | standings
max_ages = st.none() | st.integers(min_value=1, max_value=4000).map(lambda d: timedelta(days=d))


def _decide(**kwargs: object) -> tuple[bool, Reason]:
    decision = decide_message(now=NOW, is_transactional=False, **kwargs)  # type: ignore[arg-type]
    return decision.allowed, decision.reason


@settings(deadline=None)  # a loaded CI machine must not fail a property
@given(st.booleans(), st.booleans(), maybe, maybe, maybe, max_ages)
def test_a_marketing_message_is_allowed_only_on_a_full_current_grant(
    is_suppressed: bool,
    is_known: bool,
    all_marketing: Standing | None,
    channel: Standing | None,
    pair: Standing | None,
    max_age: timedelta | None,
) -> None:
    # Each standing is the last event on its topic, and no two events share a seq.
    held = [s.seq for s in (all_marketing, channel, pair) if s is not None]
    assume(len(set(held)) == len(held))
    allowed, reason = _decide(
        is_suppressed=is_suppressed,
        is_known=is_known,
        all_marketing=all_marketing,
        channel=channel,
        pair=pair,
        max_age=max_age,
    )
    assert allowed is (reason is Reason.GRANTED)
    if allowed:
        assert not is_suppressed
        assert is_known
        assert channel is not None
        assert channel.status is Status.GRANTED
        assert pair is not None
        assert pair.status is Status.GRANTED
        assert max_age is None or NOW - pair.occurred_at <= max_age
        assert (
            all_marketing is None
            or all_marketing.status is not Status.WITHDRAWN
            or all_marketing.seq < pair.seq
        )


@settings(deadline=None)  # a loaded CI machine must not fail a property
@given(st.booleans(), maybe, maybe, max_ages)
def test_no_standing_for_the_pair_or_the_channel_never_allows(
    is_suppressed: bool,
    all_marketing: Standing | None,
    other: Standing | None,
    max_age: timedelta | None,
) -> None:
    for channel, pair in ((None, other), (other, None), (None, None)):
        allowed, _ = _decide(
            is_suppressed=is_suppressed,
            is_known=True,
            all_marketing=all_marketing,
            channel=channel,
            pair=pair,
            max_age=max_age,
        )
        assert not allowed


@settings(deadline=None)  # a loaded CI machine must not fail a property
@given(standings, maybe, maybe, st.sampled_from(["channel", "pair"]))
def test_any_withdrawal_of_the_channel_or_pair_denies(
    withdrawal: Standing, channel: Standing | None, pair: Standing | None, which: str
) -> None:
    withdrawn = Standing(Status.WITHDRAWN, withdrawal.seq, withdrawal.occurred_at, "w")
    arguments = {"channel": channel, "pair": pair} | {which: withdrawn}
    allowed, reason = _decide(is_suppressed=False, is_known=True, all_marketing=None, **arguments)
    assert not allowed
    assert reason is Reason.WITHDRAWN


@settings(deadline=None)  # a loaded CI machine must not fail a property
@given(standings, standings, standings)
def test_unsubscribe_all_newer_than_the_pair_grant_denies(
    unsubscribe: Standing, channel: Standing, pair: Standing
) -> None:
    later = Standing(Status.WITHDRAWN, pair.seq + 1 + unsubscribe.seq, unsubscribe.occurred_at, "u")
    allowed, reason = _decide(
        is_suppressed=False, is_known=True, all_marketing=later, channel=channel, pair=pair
    )
    assert not allowed
    assert reason is Reason.UNSUBSCRIBED_ALL


@settings(deadline=None)  # a loaded CI machine must not fail a property
@given(st.booleans(), maybe, maybe, maybe)
def test_suppression_denies_everything_and_transactional_needs_nothing_else(
    is_known: bool, all_marketing: Standing | None, channel: Standing | None, pair: Standing | None
) -> None:
    for is_suppressed in (True, False):
        decision = decide_message(
            now=NOW,
            is_transactional=True,
            is_suppressed=is_suppressed,
            is_known=is_known,
            all_marketing=all_marketing,
            channel=channel,
            pair=pair,
        )
        assert decision.allowed is not is_suppressed


@settings(deadline=None)  # a loaded CI machine must not fail a property
@given(st.booleans(), st.booleans(), maybe, max_ages)
def test_a_purpose_is_allowed_only_on_its_own_current_grant(
    is_suppressed: bool, is_known: bool, purpose: Standing | None, max_age: timedelta | None
) -> None:
    decision = decide_purpose(
        is_suppressed=is_suppressed, is_known=is_known, purpose=purpose, now=NOW, max_age=max_age
    )
    expected = (
        not is_suppressed
        and is_known
        and purpose is not None
        and purpose.status is Status.GRANTED
        and (max_age is None or NOW - purpose.occurred_at <= max_age)
    )
    assert decision.allowed is expected


topics = st.builds(
    Topic,
    channel=st.sampled_from(["", "email", "sms"]),
    category=st.sampled_from(["", "newsletter", "offers"]),
)


@settings(deadline=None)  # a loaded CI machine must not fail a property
@given(st.text(max_size=80) | st.emails())
def test_email_normalisation_gives_a_canonical_address_or_a_clean_error(raw: str) -> None:
    try:
        address = normalize_email(raw)
    except InvalidIdentifierError:
        return
    assert normalize_email(address) == address


phones = st.text(alphabet="0123456789 +-()./x", max_size=25) | st.text(max_size=25)


@settings(max_examples=200, deadline=None)
@given(phones, st.sampled_from([None, "DE", "US", "GB", "FR", "de", "ZZ"]))
@example("1640", "DE")
def test_phone_normalisation_gives_e164_or_a_clean_error(raw: str, region: str | None) -> None:
    try:
        number = normalize_phone(raw, region)
    except InvalidIdentifierError:
        return
    assert E164.fullmatch(number)
    assert normalize_phone(number) == number  # E.164 needs no region to parse back


@settings(deadline=None)  # a loaded CI machine must not fail a property
@given(st.sampled_from(IdentifierKind), st.text(max_size=60))
def test_any_identifier_text_is_normalised_or_refused_cleanly(
    kind: IdentifierKind, raw: str
) -> None:
    try:
        ident = identifier(kind, raw)
    except InvalidIdentifierError:
        return
    assert identifier(kind, ident.value) == ident
