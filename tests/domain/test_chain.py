"""Hash chain: every kind of tampering is found and named."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from app.domain.chain import GENESIS_HASH, canonical_bytes, event_hash, verify


def make_chain(length: int) -> list[dict[str, Any]]:
    events, prev = [], GENESIS_HASH
    for seq in range(1, length + 1):
        record: dict[str, Any] = {
            "chain_id": "main",
            "seq": seq,
            "id": f"id-{seq}",
            "occurred_at": datetime(2026, 1, 1, 12, 0, seq, 123456, tzinfo=UTC),
            "subject_id": "s-1",
            "channel": "email",
            "category": "newsletter",
            "action": "grant",
            "status": "granted",
            "method": "api",
            "actor": "client:x",
            "prev_hash": prev,
        }
        record["hash"] = event_hash(record)
        prev = record["hash"]
        events.append(record)
    return events


def test_an_untouched_chain_verifies_to_its_head() -> None:
    events = make_chain(5)
    result = verify(events, head_seq=5, head_hash=events[-1]["hash"])
    assert (result.is_ok, result.events_checked, result.first_bad_seq) == (True, 5, None)


def test_a_changed_field_is_named() -> None:
    events = make_chain(5)
    events[2]["status"] = "withdrawn"
    result = verify(events, head_seq=5, head_hash=events[-1]["hash"])
    assert (result.is_ok, result.first_bad_seq) == (False, 3)


def test_a_deleted_event_is_named_by_its_missing_seq() -> None:
    events = make_chain(5)
    del events[1]
    assert verify(events).first_bad_seq == 2


def test_swapping_two_events_is_found() -> None:
    events = make_chain(5)
    events[1]["seq"], events[2]["seq"] = 3, 2
    events[1], events[2] = events[2], events[1]
    assert verify(events).first_bad_seq == 2


def test_an_inserted_event_is_found() -> None:
    events = make_chain(3)
    forged = dict(events[1])
    forged["seq"] = 3
    forged["prev_hash"] = events[1]["hash"]
    forged["hash"] = event_hash(forged)
    events.insert(2, forged)
    result = verify(events, head_seq=3, head_hash=events[-1]["hash"])
    assert not result.is_ok
    assert result.first_bad_seq == 3


def test_a_cut_off_tail_is_found_against_the_recorded_head() -> None:
    events = make_chain(5)
    head = events[-1]["hash"]
    result = verify(events[:3], head_seq=5, head_hash=head)
    assert (result.is_ok, result.first_bad_seq) == (False, 4)


def test_canonical_form_is_stable_and_holds_no_email() -> None:
    record = make_chain(1)[0]
    assert canonical_bytes(record) == canonical_bytes(dict(reversed(list(record.items()))))
    assert b"@" not in canonical_bytes(record)
    assert b'"occurred_at":"2026-01-01T12:00:01.123456Z"' in canonical_bytes(record)
