"""Verifying, live, everything the proof rests on in one streaming pass over the events.

In seq order it checks the chain, then for each event the notice text it cites, the evidence
row it names, the checkpoint it is, and the current state (consent_state) it set; the state
rows are matched to their events page by page, so memory stays flat however long the trail.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from joserfc.jwk import KeySet
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.domain import chain, proof, records
from app.domain.records import BadRecord, Finding
from app.domain.vocabulary import Action, Status
from app.models import ChainHead, ConsentEvent, ConsentState, Evidence, NoticeVersion
from app.services.consent.ledger import CHAIN_ID

PAGE = 2000
EVENTS = ConsentEvent.__table__
STATES = ConsentState.__table__
EVIDENCE = Evidence.__table__


@dataclass(frozen=True)
class Report:
    is_ok: bool
    events_checked: int
    first_bad_seq: int | None = None
    problem: str | None = None
    finding: Finding | None = None
    checked: Mapping[str, int] = field(default_factory=dict)

    @property
    def detail(self) -> dict[str, Any]:
        return self.finding.as_dict() if self.finding else dict(records.NO_FINDING)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.is_ok,
            "events_checked": self.events_checked,
            "first_bad_seq": self.first_bad_seq,
            "problem": self.problem,
            **self.detail,
            "checked": dict(self.checked),
        }


def verify(session: Session, keys: KeySet | None = None, chain_id: str = CHAIN_ID) -> Report:
    """Check the chain and every record it vouches for; name the first bad one.

    Without `keys` (the service's public keys) checkpoint signatures are not checked; the
    API and the CLI always pass them.
    """
    head = session.get(ChainHead, chain_id)
    counts = records.Counts()
    if head is None:
        return Report(True, 0, checked=counts.as_dict())
    walk = _Walk(session, head, keys, counts)
    try:
        walk.load_notices()
        walk.check_removed_states()
        result = chain.verify(
            walk.events(),
            base_seq=head.base_seq,
            base_hash=head.base_hash,
            head_seq=head.last_seq,
            head_hash=head.last_hash,
        )
        if not result.is_ok:
            finding = Finding("event", result.problem or "", result.first_bad_seq)
            return _failed(result.events_checked, finding, counts)
        walk.finish()
    except BadRecord as bad:
        return _failed(counts.events, bad.finding, counts)
    moved = _base_moved(session, head)
    if moved is not None:
        return _failed(counts.events, moved, counts)
    return Report(True, result.events_checked, checked=counts.as_dict())


def _failed(checked: int, finding: Finding, counts: records.Counts) -> Report:
    return Report(False, checked, finding.seq, finding.problem, finding, counts.as_dict())


def _base_moved(session: Session, head: ChainHead) -> Finding | None:
    last_run = session.scalar(
        select(EVENTS.c.details)
        .where(EVENTS.c.chain_id == head.chain_id, EVENTS.c.action == str(Action.RETENTION_RUN))
        .order_by(EVENTS.c.seq.desc())
        .limit(1)
    )
    moved = proof.base_problem(
        head.base_seq, head.base_hash, proof.retention_base(last_run) if last_run else None
    )
    if moved is None:
        return None
    return Finding("event", moved.problem or "", moved.first_bad_seq)


class _Walk:
    def __init__(
        self, session: Session, head: ChainHead, keys: KeySet | None, counts: records.Counts
    ) -> None:
        self.session, self.head, self.keys, self.counts = session, head, keys, counts
        self.notices = records.Notices()
        self.previous: tuple[int, str] | None = None

    def load_notices(self) -> None:
        # In the package's order, so live and offline name the same first bad notice.
        notices = NoticeVersion.__table__.c
        query = select(NoticeVersion.__table__).order_by(
            notices.key, notices.version, notices.locale
        )
        for row in self.session.execute(query).mappings():
            self.notices.add(dict(row))
            self.counts.notices += 1

    def check_removed_states(self) -> None:
        """Retention removes only the events of subjects with nothing granted or pending."""
        query = select(STATES).where(STATES.c.event_seq <= self.head.base_seq)
        for row in self.session.execute(query).mappings():
            self.counts.states += 1
            if row["status"] != Status.WITHDRAWN:
                key = (row["subject_id"], row["channel"], row["category"], row["purpose"])
                raise BadRecord(
                    Finding(
                        "state",
                        f"the current state says {row['status']} by event {row['event_seq']}, "
                        "which retention removed: only ended processing leaves the chain",
                        int(row["event_seq"]),
                        state=records.named_state(key),
                    )
                )

    def events(self) -> Iterator[dict[str, Any]]:
        """Rows straight from the table, page by page; each page's records checked after the
        chain has vouched for its events (so a broken link is named before what it carries)."""
        after = self.head.base_seq
        while True:
            rows = [
                dict(r)
                for r in self.session.execute(
                    select(EVENTS)
                    .where(EVENTS.c.chain_id == self.head.chain_id, EVENTS.c.seq > after)
                    .order_by(EVENTS.c.seq)
                    .limit(PAGE)
                ).mappings()
            ]
            if not rows:
                return
            yield from rows
            self._check_page(rows)
            after = rows[-1]["seq"]

    def _check_page(self, rows: Sequence[dict[str, Any]]) -> None:
        by_seq = {r["seq"]: r for r in rows}
        evidence = self._evidence({r["evidence_hash"] for r in rows if r["evidence_hash"]})
        subjects = {r["subject_id"] for r in rows if r["subject_id"]}
        states, named = self._states(subjects, rows[0]["seq"], rows[-1]["seq"])
        for row in rows:
            seq = int(row["seq"])
            self.notices.cite(row)
            if row["action"] == Action.NOTICE_PUBLISHED:
                self.notices.published(row, json.loads(row["details"] or "{}"))
            if row["evidence_hash"] and row["evidence_hash"] in evidence:
                records.check_evidence(seq, row["evidence_hash"], evidence[row["evidence_hash"]])
                self.counts.evidence += 1
            if row["action"] == Action.CHECKPOINT and self.keys is not None:
                jws = json.loads(row["details"] or "{}").get("jws")
                previous = self.previous if self.previous and self.previous[0] == seq - 1 else None
                proof.check_checkpoint(seq, jws, self.keys, previous)
                self.counts.checkpoints += 1
            for state in named.get(seq, ()):
                records.check_state_row(state, row)
                self.counts.states += 1
            key = records.state_key(row)
            if key is not None:
                found = states.get(key)
                erased = found is None and self._erased_after(key[0], seq)
                records.check_superseded(row, found, erased)
            if row["action"] == Action.ERASE and row["subject_id"]:
                self._check_erased(row["subject_id"], seq)
            self.counts.events += 1
            self.previous = (seq, str(row["hash"]))
        # State rows naming a seq of this page that is no event of it (a gap) were not
        # reached above.
        for seq, orphans in named.items():
            if seq not in by_seq:
                records.check_state_row(orphans[0], None)

    def finish(self) -> None:
        beyond = self.session.execute(
            select(STATES).where(STATES.c.event_seq > self.head.last_seq).limit(1)
        ).mappings()
        for row in beyond:
            records.check_state_row(dict(row), None)
        if self.head.base_seq == 0:
            unvouched = self.notices.unvouched()
            if unvouched is not None:
                raise BadRecord(unvouched)

    def _evidence(self, hashes: set[str]) -> dict[str, Mapping[str, Any]]:
        if not hashes:
            return {}
        query = select(EVIDENCE).where(EVIDENCE.c.hash.in_(hashes))
        return {row["hash"]: dict(row) for row in self.session.execute(query).mappings()}

    def _states(
        self, subjects: set[str], first: int, last: int
    ) -> tuple[dict[records.StateKey, dict[str, Any]], dict[int, list[dict[str, Any]]]]:
        """In one query: the page's subjects' state rows by topic, and the rows naming an
        event of the page by that event's seq."""
        by_event = STATES.c.event_seq.between(first, last)
        query = select(STATES).where(STATES.c.subject_id.in_(subjects) | by_event)
        of_subjects: dict[records.StateKey, dict[str, Any]] = {}
        at: dict[int, list[dict[str, Any]]] = {}
        for found in self.session.execute(query).mappings():
            row = dict(found)
            if row["subject_id"] in subjects:
                key = (row["subject_id"], row["channel"], row["category"], row["purpose"])
                of_subjects[key] = row
            if first <= row["event_seq"] <= last:
                at.setdefault(int(row["event_seq"]), []).append(row)
        return of_subjects, at

    def _erased_after(self, subject_id: str, seq: int) -> bool:
        last = self.session.scalar(
            select(func.max(EVENTS.c.seq)).where(
                EVENTS.c.subject_id == subject_id, EVENTS.c.action == str(Action.ERASE)
            )
        )
        return last is not None and int(last) > seq

    def _check_erased(self, subject_id: str, seq: int) -> None:
        kept = (
            self.session.execute(
                select(STATES).where(STATES.c.subject_id == subject_id, STATES.c.event_seq < seq)
            )
            .mappings()
            .first()
        )
        if kept is not None:
            key = (kept["subject_id"], kept["channel"], kept["category"], kept["purpose"])
            raise BadRecord(
                Finding(
                    "state",
                    f"subject {subject_id} was erased by event {seq}, but the current state "
                    f"still holds what event {kept['event_seq']} set",
                    seq,
                    state=records.named_state(key),
                )
            )
