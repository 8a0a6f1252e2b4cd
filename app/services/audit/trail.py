"""Reading the audit trail: pages, streamed exports, and verification of the chain."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from joserfc.jwk import KeySet
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.domain import chain
from app.models import ConsentEvent, Evidence
from app.services.audit import verification
from app.services.consent.ledger import CHAIN_ID

PAGE = 2000
_LINES_PER_CHUNK = 500  # one write per ~200 kB of export, not one per event
EVENTS = ConsentEvent.__table__
EVIDENCE = Evidence.__table__

EVENT_FIELDS = tuple(f.name for f in chain.FIELDS)
EVIDENCE_FIELDS = ("ip", "user_agent", "country")


@dataclass(frozen=True)
class EventFilter:
    after: int = 0
    subject_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    channel: str | None = None
    category: str | None = None
    action: str | None = None
    upto: int | None = None  # the last seq to read (a package stops at the head it signed)

    @property
    def is_complete(self) -> bool:
        """No filter but the head: every event of the chain."""
        return not (
            self.subject_id
            or self.since
            or self.until
            or self.channel
            or self.category
            or self.action
            or self.after
        )


def page(
    session: Session, filters: EventFilter, limit: int
) -> tuple[list[dict[str, Any]], int | None]:
    """Up to `limit` events after `filters.after` in seq order, and the cursor for the next page."""
    rows = session.execute(_query(filters).limit(limit)).mappings().all()
    events = _with_evidence(session, rows)
    next_after = rows[-1]["seq"] if len(rows) == limit else None
    return events, next_after


def iter_events(
    session: Session, filters: EventFilter, *, with_proof: bool = False
) -> Iterator[dict[str, Any]]:
    """Every matching event, read page by page by seq: constant memory however long the trail.

    `with_proof` adds to the evidence what its hash covers (nonce, details, time), so a
    package's reader can recompute it.
    """
    after = filters.after
    while True:
        rows = session.execute(_query(_replace_after(filters, after)).limit(PAGE)).mappings().all()
        if not rows:
            return
        yield from _with_evidence(session, rows, with_proof=with_proof)
        after = rows[-1]["seq"]
        if len(rows) < PAGE:
            return


def notice_versions(session: Session, filters: EventFilter) -> set[str]:
    """The notice versions the matching events point to."""
    query = _query(filters).with_only_columns(EVENTS.c.notice_version).order_by(None).distinct()
    return {version for version in session.scalars(query) if version}


def to_ndjson(events: Iterator[dict[str, Any]]) -> Iterator[str]:
    encode = json.JSONEncoder(
        default=_json_default, ensure_ascii=False, separators=(",", ":")
    ).encode
    lines: list[str] = []
    for event in events:
        lines.append(encode(event))
        if len(lines) == _LINES_PER_CHUNK:
            yield "\n".join(lines) + "\n"
            lines.clear()
    if lines:
        yield "\n".join(lines) + "\n"


def to_csv(events: Iterator[dict[str, Any]]) -> Iterator[str]:
    columns = [*EVENT_FIELDS, *EVIDENCE_FIELDS]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    yield _drain(buffer)
    rows = 0
    for event in events:
        evidence = event.get("evidence") or {}
        writer.writerow(
            [_csv_cell(event.get(c)) for c in EVENT_FIELDS]
            + [_csv_cell(evidence.get(c)) for c in EVIDENCE_FIELDS]
        )
        rows += 1
        if rows == _LINES_PER_CHUNK:
            yield _drain(buffer)
            rows = 0
    if rows:
        yield _drain(buffer)


def verify(
    session: Session, chain_id: str = CHAIN_ID, keys: KeySet | None = None
) -> verification.Report:
    """The chain and every record it vouches for: see services/audit/verification.py."""
    return verification.verify(session, keys, chain_id)


def event_dict(
    row: Mapping[str, Any], evidence: Any = None, *, with_proof: bool = False
) -> dict[str, Any]:
    event = {name: row[name] for name in EVENT_FIELDS}
    event["occurred_at"] = chain.format_time(row["occurred_at"])
    event["details"] = json.loads(row["details"]) if row["details"] else None
    event["evidence"] = (
        {name: evidence[name] for name in EVIDENCE_FIELDS} if evidence is not None else None
    )
    if with_proof and evidence is not None:
        event["evidence"] |= {
            "nonce": evidence["nonce"],
            "details": evidence["details"],
            "created_at": chain.format_time(evidence["created_at"]),
        }
    return event


def _query(filters: EventFilter) -> Any:
    query = select(EVENTS).where(EVENTS.c.seq > filters.after).order_by(EVENTS.c.seq)
    if filters.subject_id:
        query = query.where(EVENTS.c.subject_id == filters.subject_id)
    if filters.since:
        query = query.where(EVENTS.c.occurred_at >= filters.since)
    if filters.until:
        query = query.where(EVENTS.c.occurred_at < filters.until)
    if filters.channel:
        query = query.where(EVENTS.c.channel == filters.channel)
    if filters.category:
        query = query.where(EVENTS.c.category == filters.category)
    if filters.action:
        query = query.where(EVENTS.c.action == filters.action)
    if filters.upto is not None:
        query = query.where(EVENTS.c.seq <= filters.upto)
    return query


def _replace_after(filters: EventFilter, after: int) -> EventFilter:
    return replace(filters, after=after)


def _with_evidence(
    session: Session, rows: Sequence[Any], *, with_proof: bool = False
) -> list[dict[str, Any]]:
    hashes = {r["evidence_hash"] for r in rows if r["evidence_hash"]}
    evidence = (
        {
            e["hash"]: e
            for e in session.execute(select(EVIDENCE).where(EVIDENCE.c.hash.in_(hashes))).mappings()
        }
        if hashes
        else {}
    )
    return [
        event_dict(r, evidence.get(r["evidence_hash"] or ""), with_proof=with_proof) for r in rows
    ]


def _drain(buffer: io.StringIO) -> str:
    text = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    return text


# OWASP CSV injection: a spreadsheet runs a cell that starts with one of these as a formula.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _csv_cell(value: Any) -> Any:
    if isinstance(value, dict):
        value = json.dumps(value, sort_keys=True, separators=(",", ":"))
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value  # shown as text, the quote visible: the data is not silently changed
    return value


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return chain.format_time(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")
