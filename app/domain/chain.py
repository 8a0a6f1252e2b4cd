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
from typing import Any

FORMAT_VERSION = 1
GENESIS_HASH = "0" * 64
HASHED_FIELDS = (
    "chain_id",
    "seq",
    "id",
    "occurred_at",
    "subject_id",
    "channel",
    "category",
    "purpose",
    "action",
    "status",
    "legal_basis",
    "method",
    "source",
    "actor",
    "capture_point",
    "locale",
    "notice_version",
    "notice_sha256",
    "evidence_hash",
    "details",
    "prev_hash",
)


def format_time(moment: datetime) -> str:
    """Microsecond UTC ISO 8601, the one spelling of a time in the chain."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def canonical_bytes(record: Mapping[str, Any]) -> bytes:
    body: dict[str, Any] = {"v": FORMAT_VERSION}
    for name in HASHED_FIELDS:
        value = record.get(name)
        body[name] = format_time(value) if isinstance(value, datetime) else value
    return canonical_json(body).encode("utf-8")


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
