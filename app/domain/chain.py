"""The audit chain: canonical serialisation of an event, its hash, and verification.

The canonical form holds no personal data (a subject is its UUID; IP and user agent sit in a
separate evidence row that the event names by hash), so erasing a person never breaks the chain.
Format 1: UTF-8 JSON, keys sorted, no spaces, over exactly `HASHED_FIELDS` plus ``"v": 1``;
``hash = sha256(canonical)``, and each event's ``prev_hash`` is the hash before it in its chain.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import orjson

FORMAT_VERSION = 1
GENESIS_HASH = "0" * 64


@dataclass(frozen=True)
class EventField:
    """One field of an audit event: its wire kind, whether it may be null, whether it is hashed."""

    name: str
    kind: Literal["int", "str", "time", "json"] = "str"
    is_nullable: bool = True
    is_hashed: bool = True


# The one declaration of an event's fields, in wire order (the contract's first, then the rest
# of the proof). The model's columns, the chain's hashed fields, the export columns and the API
# schema all follow it (tests/domain/test_chain.py holds the model to it).
FIELDS = (
    EventField("seq", "int", is_nullable=False),
    EventField("id", is_nullable=False),
    EventField("occurred_at", "time", is_nullable=False),
    EventField("subject_id"),
    EventField("channel"),
    EventField("category"),
    EventField("purpose"),
    EventField("action", is_nullable=False),
    EventField("status"),
    EventField("source"),
    EventField("actor", is_nullable=False),
    EventField("notice_version"),
    EventField("prev_hash", is_nullable=False),
    EventField("hash", is_nullable=False, is_hashed=False),
    EventField("chain_id", is_nullable=False),
    EventField("legal_basis"),
    EventField("method", is_nullable=False),
    EventField("capture_point"),
    EventField("locale"),
    EventField("notice_sha256"),
    EventField("evidence_hash"),
    EventField("details", "json"),
)
# The canonical form sorts its keys, so this order is not part of the format; the set is.
HASHED_FIELDS = tuple(f.name for f in FIELDS if f.is_hashed)


def format_time(moment: datetime) -> str:
    """Microsecond UTC ISO 8601, the one spelling of a time in the chain."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def format_utc(moment: datetime) -> str:
    """`format_time`'s very bytes for a naive datetime that means UTC (as the feed reads its
    times), several times faster; an aware one, or a year before 1000 (strftime writes it
    unpadded), goes the long way."""
    if moment.tzinfo is None and moment.year >= 1000:
        text = moment.isoformat()  # YYYY-MM-DDTHH:MM:SS, and .ffffff unless it is zero
        return text + "Z" if moment.microsecond else text + ".000000Z"
    return format_time(moment if moment.tzinfo else moment.replace(tzinfo=UTC))


def canonical_json(value: Any) -> str:
    """Keys sorted, no spaces, UTF-8 as is: the one serialisation that is hashed or signed."""
    return canonical_utf8(value).decode("utf-8")


def canonical_utf8(value: Any) -> bytes:
    """`canonical_json`'s UTF-8 bytes. Strings, integers, booleans, nulls, lists and objects
    with string keys go through orjson, whose bytes for them are json's (a test compares
    every character and generated documents); anything else (a float, an integer beyond 64
    bits, a lone surrogate) through json, as every hash before orjson was made."""
    if _is_plain(value):
        try:
            return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
        except TypeError:  # orjson.JSONEncodeError: beyond 64 bits, or not UTF-8
            pass
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text.encode("utf-8")


_SCALARS = frozenset({str, int, bool, type(None)})
_KEYS = frozenset({str})


def _is_plain(value: Any) -> bool:
    kind = type(value)
    if kind in _SCALARS:
        return True
    if kind is dict:
        if not _KEYS.issuperset(map(type, value)):
            return False
        items = value.values()
    elif kind is list or kind is tuple:
        items = value
    else:
        return False
    return _SCALARS.issuperset(map(type, items)) or all(map(_is_plain, items))


def canonical_bytes(record: Mapping[str, Any]) -> bytes:
    body: dict[str, Any] = {"v": FORMAT_VERSION}
    for name in HASHED_FIELDS:
        value = record.get(name)
        body[name] = format_time(value) if isinstance(value, datetime) else value
    return canonical_utf8(body)


def event_hash(record: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical_bytes(record)).hexdigest()


@dataclass(frozen=True)
class Verification:
    is_ok: bool
    events_checked: int
    first_bad_seq: int | None = None
    problem: str | None = None
    last_seq: int | None = None
    last_hash: str | None = None


def verify(
    records: Iterable[Mapping[str, Any]],
    *,
    base_seq: int = 0,
    base_hash: str = GENESIS_HASH,
    head_seq: int | None = None,
    head_hash: str | None = None,
) -> Verification:
    """Walk one chain in seq order from its base; name the first event that is not as it was.

    Finds a changed byte (hash mismatch), a deleted or inserted event (seq gap or broken link),
    a reordering (seq is hashed, so a moved event fails its own hash), and, given the recorded
    head, a cut-off tail.
    """
    expected_seq, prev_hash, checked = base_seq + 1, base_hash, 0
    for record in records:
        seq = int(record["seq"])
        if seq != expected_seq:
            missing = expected_seq if seq > expected_seq else seq
            return _bad(checked, missing, f"expected event {expected_seq}, found {seq}")
        if record.get("prev_hash") != prev_hash:
            return _bad(checked, seq, f"event {seq} does not link to the event before it")
        if event_hash(record) != record.get("hash"):
            return _bad(checked, seq, f"event {seq} was altered: its hash does not match")
        checked += 1
        prev_hash, expected_seq = str(record["hash"]), seq + 1
    last_seq = expected_seq - 1
    if head_seq is not None and (last_seq != head_seq or prev_hash != head_hash):
        if last_seq < head_seq:
            return _bad(checked, last_seq + 1, f"events after {last_seq} are missing")
        return _bad(checked, head_seq, f"the chain does not end at its recorded head {head_seq}")
    return Verification(True, checked, last_seq=last_seq, last_hash=prev_hash)


def _bad(checked: int, seq: int, problem: str) -> Verification:
    return Verification(False, checked, first_bad_seq=seq, problem=problem)
