"""The decision rules, one precedence step at a time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.domain.consent import (
    Standing,
    decide_message,
    decide_purpose,
)
from app.domain.vocabulary import Reason, Status

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def standing(status: Status, seq: int, *, days_ago: int = 1) -> Standing:
    return Standing(status, seq, NOW - timedelta(days=days_ago), f"event-{seq}")


def decide(**overrides: object) -> tuple[bool, Reason, str | None]:
    arguments: dict[str, object] = {
        "is_transactional": False,
        "is_suppressed": False,
        "is_known": True,
        "all_marketing": None,
        "channel": standing(Status.GRANTED, 1),
        "pair": standing(Status.GRANTED, 2),
        "now": NOW,
        "max_age": None,
    } | overrides
    decision = decide_message(**arguments)  # type: ignore[arg-type]
    return decision.allowed, decision.reason, decision.event_id


def test_confirmed_channel_and_granted_pair_is_allowed_and_names_the_grant() -> None:
    assert decide() == (True, Reason.GRANTED, "event-2")


def test_suppression_comes_before_everything_even_transactional() -> None:
    assert decide(is_suppressed=True, is_transactional=True)[:2] == (False, Reason.SUPPRESSED)


def test_transactional_needs_no_record() -> None:
    assert decide(is_transactional=True, is_known=False, channel=None, pair=None)[:2] == (
        True,
        Reason.TRANSACTIONAL,
    )


def test_unknown_subject_is_no_record() -> None:
    assert decide(is_known=False)[:2] == (False, Reason.NO_RECORD)


def test_nothing_granted_is_denied_by_default() -> None:
    assert decide(channel=None, pair=None)[:2] == (False, Reason.NO_RECORD)


def test_a_pair_without_a_channel_opt_in_is_no_record() -> None:
    assert decide(channel=None)[:2] == (False, Reason.NO_RECORD)


def test_unsubscribe_all_newer_than_the_grant_denies() -> None:
    result = decide(all_marketing=standing(Status.WITHDRAWN, 5))
    assert result == (False, Reason.UNSUBSCRIBED_ALL, "event-5")


def test_a_later_grant_of_the_pair_lifts_unsubscribe_all_for_that_pair() -> None:
    result = decide(all_marketing=standing(Status.WITHDRAWN, 5), pair=standing(Status.GRANTED, 6))
    assert result[:2] == (True, Reason.GRANTED)


def test_a_later_channel_grant_alone_does_not_lift_unsubscribe_all() -> None:
    result = decide(
        all_marketing=standing(Status.WITHDRAWN, 5),
        channel=standing(Status.GRANTED, 7),
        pair=standing(Status.GRANTED, 2),
    )
    assert result[1] is Reason.UNSUBSCRIBED_ALL


@pytest.mark.parametrize("which", ["channel", "pair"])
def test_withdrawing_the_channel_or_the_pair_denies(which: str) -> None:
    result = decide(**{which: standing(Status.WITHDRAWN, 9)})
    assert result == (False, Reason.WITHDRAWN, "event-9")


def test_withdrawal_wins_over_pending() -> None:
    result = decide(channel=standing(Status.PENDING, 1), pair=standing(Status.WITHDRAWN, 2))
    assert result[1] is Reason.WITHDRAWN


@pytest.mark.parametrize("which", ["channel", "pair"])
def test_pending_double_opt_in_denies(which: str) -> None:
    assert decide(**{which: standing(Status.PENDING, 3)})[:2] == (
        False,
        Reason.PENDING_CONFIRMATION,
    )


def test_a_grant_older_than_the_maximum_age_has_expired() -> None:
    old = standing(Status.GRANTED, 2, days_ago=400)
    assert decide(pair=old, max_age=timedelta(days=365)) == (False, Reason.EXPIRED, "event-2")
    assert decide(pair=old, max_age=None)[1] is Reason.GRANTED
    assert decide(pair=standing(Status.GRANTED, 2, days_ago=10), max_age=timedelta(days=365))[0]


def test_purposes_ignore_unsubscribe_all_and_follow_the_same_rules() -> None:
    granted = decide_purpose(
        is_suppressed=False, is_known=True, purpose=standing(Status.GRANTED, 3), now=NOW
    )
    assert (granted.allowed, granted.reason) == (True, Reason.GRANTED)
    none = decide_purpose(is_suppressed=False, is_known=True, purpose=None, now=NOW)
    assert none.reason is Reason.NO_RECORD
    erased = decide_purpose(is_suppressed=True, is_known=True, purpose=None, now=NOW)
    assert erased.reason is Reason.SUPPRESSED
