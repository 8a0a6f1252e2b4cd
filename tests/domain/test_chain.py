"""Hash chain: every kind of tampering is found and named."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.domain.chain import (
    FIELDS,
    GENESIS_HASH,
    HASHED_FIELDS,
    canonical_bytes,
    canonical_json,
    canonical_utf8,
    event_hash,
    format_time,
    format_utc,
    verify,
)
from app.models import ConsentEvent


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


def test_the_hash_format_is_byte_for_byte_what_existing_chains_hold() -> None:
    record = dict.fromkeys(HASHED_FIELDS) | {
        "chain_id": "main",
        "seq": 7,
        "id": "0b0e6a52-8a5b-4f7e-9a38-5f2e8f0c8f11",
        "occurred_at": datetime(2026, 11, 20, 9, 0, 0, 123456, tzinfo=UTC),
        "subject_id": "5d1c0c0e-1111-4222-8333-944455556666",
        "channel": "email",
        "category": "newsletter",
        "action": "grant",
        "status": "granted",
        "legal_basis": "consent",
        "method": "double_opt_in",
        "source": "signup",
        "actor": "subject",
        "locale": "de",
        "notice_version": "2026-11-01",
        "details": '{"request_id":"r1"}',
        "prev_hash": "ab" * 32,
        "hash": "not hashed",
    }
    # Computed before the fields were declared in one place; a chain written then still verifies.
    assert event_hash(record) == "c89b315e383f40563a994ec7b9df492349aa597827a60bbf79e4ce256051d36a"


def json_bytes(value: Any) -> bytes:
    """The canonical form as every hash before orjson was made."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def test_every_character_is_spelled_as_json_spells_it() -> None:
    characters = [chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]
    for start in range(0, len(characters), 4096):
        part = characters[start : start + 4096]
        for text in part:
            document = {"k": text, text: [text, None, True, 7]}
            assert canonical_utf8(document) == json_bytes(document), hex(ord(text))
        joined = {"text": "".join(part)}
        assert canonical_utf8(joined) == json_bytes(joined)


documents = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()  # beyond 64 bits too, which orjson refuses
    | st.floats(allow_nan=False)
    | st.text(),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(inner, inner)
        | st.dictionaries(st.text(), inner, max_size=4)
    ),
    max_leaves=20,
)


@given(documents)
def test_the_canonical_form_of_any_document_is_what_json_gave(document: Any) -> None:
    assert canonical_utf8(document) == json_bytes(document)
    assert canonical_json(document) == json_bytes(document).decode()


def test_a_lone_surrogate_is_refused_as_before() -> None:
    with pytest.raises(UnicodeEncodeError):
        canonical_utf8({"k": "\ud800"})


def test_the_event_table_stores_exactly_the_declared_fields() -> None:
    columns = ConsentEvent.__table__.columns
    assert [(c.key, c.nullable) for c in columns] == [(f.name, f.is_nullable) for f in FIELDS]


def _times() -> list[datetime]:
    """Many instants: every microsecond edge, years 1 to 9999, random ones, many zones."""
    chosen = random.Random(15)
    zones: list[tzinfo] = [UTC, timezone(timedelta(hours=2)), ZoneInfo("Europe/Berlin")]
    zones.append(timezone(timedelta(hours=-9, minutes=-30)))
    moments = [
        datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC),
        datetime(2026, 3, 1, 12, 0, 0, 1, tzinfo=UTC),
        datetime(2026, 3, 1, 12, 0, 0, 999_999, tzinfo=UTC),
        datetime(2026, 3, 1, 12, 0, 0, 100_000, tzinfo=UTC),
        datetime(1, 1, 1, 3, 0, tzinfo=UTC),
        datetime(999, 12, 31, 23, 59, 59, tzinfo=UTC),
        datetime(1000, 1, 1, tzinfo=UTC),
        datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
    ]
    for _ in range(20_000):
        moment = datetime(1, 1, 1, tzinfo=UTC) + timedelta(
            seconds=chosen.randrange(315_537_897_599), microseconds=chosen.randrange(1_000_000)
        )
        if chosen.random() < 0.3:
            moment = moment.replace(microsecond=0)
        moments.append(moment)
    return [
        m.astimezone(zones[i % len(zones)]) if 1 < m.year < 9999 else m
        for i, m in enumerate(moments)
    ]


def test_format_utc_spells_every_time_as_format_time_does() -> None:
    for moment in _times():
        naive = moment.astimezone(UTC).replace(tzinfo=None)
        assert format_utc(naive) == format_time(moment), moment
        assert format_utc(moment) == format_time(moment), moment
