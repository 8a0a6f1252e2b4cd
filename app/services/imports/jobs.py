"""Imports: an uploaded file is stored in chunks, then applied one chunk per transaction.

A chunk's events and the job's progress commit together, so a worker killed mid-way starts
again exactly at the first chunk not applied. A dry run applies each chunk inside a savepoint
and rolls it back, keeping only the counts.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete, select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, defer

from app.database import analyze, in_parts, insert_many, one_of
from app.domain import imports as rows_
from app.domain.consent import ALL_MARKETING, Topic, channel_topic, legal_basis, pair_topic
from app.domain.errors import DomainError, NotFoundError
from app.domain.identifiers import Identifier, identifier
from app.domain.rules import Rules
from app.domain.vocabulary import Action, IdentifierKind, Method, Status
from app.models import (
    ChainHead,
    ConsentEvent,
    ConsentState,
    Evidence,
    IdentifierVariant,
    ImportChunk,
    ImportJob,
    ImportRejection,
    Subject,
    SubjectIdentifier,
    new_id,
    utcnow,
)
from app.services.consent import ledger, notices, suppression
from app.services.identity import identifiers

CHUNK_LINES = 2_000
MAX_ERRORS_SHOWN = 1_000
ANALYZE_AFTER = 10_000  # rows applied by an import, after which its tables are analysed

log = logging.getLogger(__name__)


class State(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class Format(StrEnum):
    NDJSON = "ndjson"
    CSV = "csv"


def create(
    session: Session,
    lines: Iterable[str],
    fmt: Format,
    *,
    actor: str,
    is_dry_run: bool = False,
    now: datetime | None = None,
) -> ImportJob:
    """Store the file's lines in chunks as they stream in (never the whole file in memory)."""
    now = now or utcnow()
    job = ImportJob(
        id=new_id(),
        state=str(State.QUEUED),
        is_dry_run=is_dry_run,
        actor=actor,
        created_at=now,
        chunks=0,
        chunks_done=0,
        rows=0,
        applied=0,
        unchanged=0,
        rejected=0,
    )
    session.add(job)
    numbered = enumerate((raw.rstrip("\r\n") for raw in lines), 1)
    header: str | None = None
    if fmt is Format.CSV:
        header = next((text for _, text in numbered if text.strip()), None)
    number = 0
    for batch in _batches(numbered):
        session.add(
            ImportChunk(
                import_id=job.id,
                number=number,
                first_line=batch[0][0],
                header=header,
                body="\n".join(text for _, text in batch),
            )
        )
        session.flush()
        session.expunge_all()  # keeps memory flat however long the file is
        session.add(job)
        number += 1
    job.chunks = number
    if fmt is Format.CSV and header is None:
        job.state, job.error = str(State.FAILED), "The CSV file has no header row."
    session.commit()
    return job


def _batches(numbered: Iterator[tuple[int, str]]) -> Iterator[list[tuple[int, str]]]:
    batch: list[tuple[int, str]] = []
    for item in numbered:
        batch.append(item)
        if len(batch) >= CHUNK_LINES:
            yield batch
            batch = []
    if batch:
        yield batch


@dataclass(frozen=True)
class Report:
    job: ImportJob
    errors: list[ImportRejection]

    def as_data(self) -> dict[str, Any]:
        """The report as the API and the CLI show it."""
        job = self.job
        return {
            "import_id": job.id,
            "state": job.state,
            "dry_run": job.is_dry_run,
            "rows": job.rows,
            "applied": job.applied,
            "unchanged": job.unchanged,
            "rejected": job.rejected,
            "chunks": job.chunks,
            "chunks_done": job.chunks_done,
            "created_at": job.created_at,
            "finished_at": job.finished_at,
            "errors": [{"line": e.line, "detail": e.detail} for e in self.errors],
        }


def report(session: Session, import_id: str) -> Report:
    job = session.get(ImportJob, import_id)
    if job is None:
        raise NotFoundError(f"No import {import_id}.")
    errors = list(
        session.scalars(
            select(ImportRejection)
            .where(ImportRejection.import_id == import_id)
            .order_by(ImportRejection.line)
            .limit(MAX_ERRORS_SHOWN)
        )
    )
    session.commit()
    return Report(job, errors)


def next_due(session: Session) -> str | None:
    """The oldest import with work left (a running one first: it was cut off by a restart)."""
    found = session.scalar(
        select(ImportJob.id)
        .where(ImportJob.state.in_([str(State.RUNNING), str(State.QUEUED)]))
        .order_by(ImportJob.state.desc(), ImportJob.created_at)
        .limit(1)
    )
    session.commit()
    return found


def apply_next_chunk(
    session: Session,
    rules: Rules,
    import_id: str,
    *,
    now: datetime | None = None,
    ahead: Ahead | None = None,
) -> bool:
    """Apply the import's next chunk in one transaction; False once nothing is left.

    With `ahead`, the chunk after this one is parsed on a thread while this one is written
    (the caller keeps it for the import's next call)."""
    now = now or utcnow()
    head = ledger.lock(session)
    job = session.get(ImportJob, import_id, populate_existing=True)
    if job is None:
        raise NotFoundError(f"No import {import_id}.")
    if job.state in (State.QUEUED, State.RUNNING):
        _apply_chunk(session, rules, head, job, now, ahead)
    is_more = job.state == State.RUNNING
    session.commit()
    return is_more


def analyze_written(session: Session, import_id: str) -> bool:
    """After an import that wrote `ANALYZE_AFTER` rows or more, bring the planner's statistics
    of the tables it wrote up to date, so that the checks after it are planned from the
    numbers of now (`database.analyze`); True if it did. When the database refuses it for
    now (a lock or time limit), the import stays done and a warning says what to run."""
    job = session.get(ImportJob, import_id)
    is_large = (
        job is not None
        and job.state == State.DONE
        and not job.is_dry_run
        and job.applied >= ANALYZE_AFTER
    )
    analysed = is_large and _analysed(session, import_id)
    session.commit()
    return analysed


def _analysed(session: Session, import_id: str) -> bool:
    """`database.analyze` of what an import wrote, in a savepoint: when the database refuses
    it for now (a lock or time limit), only the savepoint is undone and a warning says what
    to run."""
    try:
        with session.begin_nested():
            analyze(session, _WRITTEN)
    except OperationalError as error:
        log.warning(
            "import %s is done, but its tables were not analysed (%s): run ANALYZE %s"
            " when the database is quieter, or the checks may be planned from old numbers",
            import_id,
            error.orig,
            ", ".join(table.name for table in _WRITTEN),
        )
        return False
    return True


def _apply_chunk(
    session: Session,
    rules: Rules,
    head: ChainHead,
    job: ImportJob,
    now: datetime,
    ahead: Ahead | None,
) -> None:
    if job.started_at is None:
        job.state, job.started_at = str(State.RUNNING), now
    # The lines only if not parsed ahead already (then read when `_Lines.of` asks for them).
    chunk = session.get(ImportChunk, (job.id, job.chunks_done), options=[defer(ImportChunk.body)])
    if chunk is None:
        job.state, job.finished_at = str(State.DONE), now
        return
    parsed = (
        ahead.take(rules, job.id, chunk) if ahead is not None else _parse(rules, _Lines.of(chunk))
    )
    applier = _Applier(session, rules, head, job, now)
    savepoint = session.begin_nested() if job.is_dry_run else None
    counts = applier.decide(parsed)
    if ahead is not None:
        upcoming = session.get(ImportChunk, (job.id, job.chunks_done + 1))
        if upcoming is not None:
            ahead.start(rules, job.id, upcoming)
    applier.write()
    if savepoint is not None:
        savepoint.rollback()  # a dry run keeps the counts only
        session.refresh(job)
        chunk = session.get(ImportChunk, (job.id, job.chunks_done))
        assert chunk is not None
    for line, detail in sorted(applier.rejections):
        session.add(ImportRejection(import_id=job.id, line=line, detail=detail))
    job.rows += counts.rows
    job.applied += counts.applied
    job.unchanged += counts.unchanged
    job.rejected += counts.rejected
    job.chunks_done += 1
    session.delete(chunk)  # the lines hold personal data: gone once applied
    if job.chunks_done >= job.chunks:
        job.state, job.finished_at = str(State.DONE), now


@dataclass(frozen=True)
class _Lines:
    """A chunk's lines as plain values, which a thread may read."""

    first_line: int
    header: str | None
    body: str

    @classmethod
    def of(cls, chunk: ImportChunk) -> _Lines:
        return cls(chunk.first_line, chunk.header, chunk.body)


@dataclass
class _Parsed:
    """A chunk's rows with everything that needs no database: parsed, checked against the
    catalog, their identifiers normalised and keyed (`suppression.keys_of`, made once)."""

    rows: list[tuple[int, rows_.Row, Topic, list[Identifier]]] = field(default_factory=list)
    rejections: list[tuple[int, str]] = field(default_factory=list)
    keys: dict[Identifier, tuple[str, ...]] = field(default_factory=dict)
    lines: int = 0


def _parse(rules: Rules, lines: _Lines) -> _Parsed:
    parsed = _Parsed()
    header = rows_.csv_header(lines.header) if lines.header is not None else None
    for offset, text in enumerate(lines.body.split("\n")):
        if not text.strip():
            continue
        if offset % 64 == 0:
            time.sleep(0)  # on a thread: hand the GIL to a writer whose answer has come
        line = lines.first_line + offset
        parsed.lines += 1
        try:
            row = rows_.from_csv(header, text) if header is not None else rows_.from_ndjson(text)
            topic = _topic(rules, row)
            idents = [identifier(kind, raw, region=row.country) for kind, raw in row.identifiers]
        except (rows_.RowError, DomainError) as error:
            parsed.rejections.append((line, str(error)))
            continue
        for ident in idents:
            if ident not in parsed.keys:
                parsed.keys[ident] = suppression.keys_of(rules, ident)
        parsed.rows.append((line, row, topic, idents))
    return parsed


def _topic(rules: Rules, row: rows_.Row) -> Topic:
    catalog = rules.catalog
    if row.purpose:
        catalog.require_purpose(row.purpose)
        return Topic(purpose=row.purpose)
    if not row.category:
        catalog.require_channel(row.channel)
        return channel_topic(row.channel)
    if catalog.require_pair(row.channel, row.category).is_transactional:
        raise rows_.RowError(f"category: {row.category!r} is transactional: no consent to import.")
    return pair_topic(row.channel, row.category)


class Ahead:
    """Parses an import's next chunk on a thread while the chunk before it is written.

    The parse (JSON or CSV, normalising, HMACs) needs no database and the write mostly waits
    for one; psycopg lets go of the GIL while it waits, so the two overlap. A parse is used
    only for the chunk it was made from (a chunk's lines never change)."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="import-ahead")
        self._next: tuple[tuple[str, int], Future[_Parsed]] | None = None

    def start(self, rules: Rules, import_id: str, chunk: ImportChunk) -> None:
        self._next = (import_id, chunk.number), self._pool.submit(_parse, rules, _Lines.of(chunk))

    def take(self, rules: Rules, import_id: str, chunk: ImportChunk) -> _Parsed:
        made, self._next = self._next, None
        if made is not None and made[0] == (import_id, chunk.number):
            return made[1].result()
        return _parse(rules, _Lines.of(chunk))

    def close(self) -> None:
        self._pool.shutdown(cancel_futures=True)

    def __enter__(self) -> Ahead:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def fail(session: Session, import_id: str, error: str, *, now: datetime | None = None) -> None:
    """Give up on an import whose chunk cannot be applied (a bug, not a bad line)."""
    job = session.get(ImportJob, import_id)
    if job is not None:
        job.state, job.error, job.finished_at = str(State.FAILED), error[:2000], now or utcnow()
        session.execute(delete(ImportChunk).where(ImportChunk.import_id == import_id))
    session.commit()


@dataclass
class Counts:
    rows: int = 0
    applied: int = 0
    unchanged: int = 0
    rejected: int = 0


@dataclass
class _Person:
    """A subject as the chunk holds it: new ones are inserted, changed ones updated, once."""

    id: str
    locale: str | None
    country: str | None
    is_new: bool = False
    is_changed: bool = False


@dataclass
class _Contact:
    """An identifier as the chunk holds it (keyed by its HMAC)."""

    subject_id: str
    confirmed_at: datetime | None
    row: dict[str, Any] | None = None  # a new identifier's row, to insert
    is_confirmed_now: bool = False


class _Applier:
    """Applies one chunk's rows inside the caller's locked transaction.

    Everything the rows need is read up front, in a handful of set-based queries (holders of
    the chunk's identifiers, suppressions, the subjects and their current standings), as
    plain data; the rows are then decided in memory and the chunk is written at the end with
    an executemany statement per table (subjects, identifiers, evidence, events, state).
    """

    def __init__(
        self, session: Session, rules: Rules, head: ChainHead, job: ImportJob, now: datetime
    ) -> None:
        self.session, self.rules, self.job, self.now = session, rules, job, now
        self.head = head
        self.rejections: list[tuple[int, str]] = []
        self.notices: dict[tuple[str, str | None], str | None] = {}
        self.held: dict[str, _Contact] = {}  # by HMAC
        self.hmacs: dict[Identifier, tuple[str, ...]] = {}
        self.subjects: dict[str, _Person] = {}
        self.states: dict[ledger.StateKey, ledger.Stored] = {}
        self.batch = ledger.Batch()
        self.suppressed: set[str] = set()
        self.recorded: set[tuple[str, Topic]] = set()
        catalog = rules.catalog
        self.topics = [
            ALL_MARKETING,
            *(channel_topic(c) for c in catalog.channels),
            *(pair_topic(c, k) for c, k in catalog.marketing_pairs()),
            *(Topic(purpose=p) for p in catalog.purposes),
        ]

    def decide(self, parsed: _Parsed) -> Counts:
        """Decide every row of the chunk against what is stored and what the rows before it
        did; the events, state and rows to write are planned, not yet written."""
        counts = Counts(rows=parsed.lines, rejected=len(parsed.rejections))
        self.rejections.extend(parsed.rejections)
        self.hmacs.update(parsed.keys)
        prepared = []
        for line, row, topic, idents in parsed.rows:
            try:
                notice_sha256 = self._notice(row)
            except rows_.RowError as error:
                counts.rejected += 1
                self.rejections.append((line, str(error)))
                continue
            prepared.append((line, row, topic, notice_sha256, idents))
        self._prefetch([i for *_, idents in prepared for i in idents])
        with self.session.no_autoflush:
            for line, row, topic, notice_sha256, idents in prepared:
                try:
                    outcome = self.row(row, line, topic, notice_sha256, idents)
                except DomainError as error:
                    counts.rejected += 1
                    self.rejections.append((line, str(error)))
                    continue
                if outcome is rows_.Outcome.UNCHANGED:
                    counts.unchanged += 1
                else:
                    counts.applied += 1
        return counts

    def write(self) -> None:
        """The chunk's rows: a handful of executemany statements, whatever its length."""
        session = self.session
        people = list(self.subjects.values())
        new_people = [
            {"id": p.id, "created_at": self.now, "locale": p.locale, "country": p.country}
            for p in people
            if p.is_new
        ]
        insert_many(session, _SUBJECTS, new_people)
        changed = [
            {"b_id": p.id, "locale": p.locale, "country": p.country}
            for p in people
            if p.is_changed and not p.is_new
        ]
        if changed:
            session.execute(update(_SUBJECTS).where(_SUBJECTS.c.id == bindparam("b_id")), changed)
        contacts = self.held.values()
        new_contacts = [c.row | {"confirmed_at": c.confirmed_at} for c in contacts if c.row]
        insert_many(session, _IDENTIFIERS, new_contacts)
        suppression.store_keys(
            session,
            self.rules,
            [
                (
                    c["hmac"],
                    self._suppression_keys(Identifier(IdentifierKind(c["kind"]), c["value"])),
                )
                for c in new_contacts
                if c["kind"] in suppression.KINDS
            ],
        )
        confirmed = [
            {"b_hmac": key, "confirmed_at": c.confirmed_at}
            for key, c in self.held.items()
            if c.is_confirmed_now and c.row is None
        ]
        if confirmed:
            session.execute(
                update(_IDENTIFIERS).where(_IDENTIFIERS.c.hmac == bindparam("b_hmac")), confirmed
            )
        ledger.write(session, self.batch, self.now)
        session.flush()  # the head and the job's progress, inside a dry run's savepoint too

    def _prefetch(self, idents: list[Identifier]) -> None:
        session = self.session
        keys = list({self._key(i) for i in idents})
        found = _IDENTIFIERS.c
        for part in in_parts(session, keys):
            self.held.update(
                (hmac, _Contact(subject_id, confirmed_at))
                for hmac, subject_id, confirmed_at in session.execute(
                    select(found.hmac, found.subject_id, found.confirmed_at).where(
                        one_of(session, found.hmac, part)
                    )
                )
            )
        suppression_keys = list({k for i in idents for k in self._suppression_keys(i)})
        for part in in_parts(session, suppression_keys):
            self.suppressed |= suppression.suppressed_keys(session, part)
        owners = list({c.subject_id for c in self.held.values()})
        people, states = _SUBJECTS.c, _STATES.c
        for part in in_parts(session, owners):
            self.subjects.update(
                (id_, _Person(id_, locale, country))
                for id_, locale, country in session.execute(
                    select(people.id, people.locale, people.country).where(
                        one_of(session, people.id, part)
                    )
                )
            )
            self.states.update(
                (
                    (r.subject_id, r.channel, r.category, r.purpose),
                    ledger.Stored(Status(r.status), r.event_seq, r.occurred_at, r.consented_at),
                )
                for r in session.execute(
                    select(_STATES).where(one_of(session, states.subject_id, part))
                )
            )

    def _key(self, ident: Identifier) -> str:
        """The identifier's HMAC, made once per chunk."""
        return self._suppression_keys(ident)[0]

    def _suppression_keys(self, ident: Identifier) -> tuple[str, ...]:
        """`suppression.keys_of` (the current key's HMAC first), made once per chunk."""
        found = self.hmacs.get(ident)
        if found is None:
            found = self.hmacs[ident] = suppression.keys_of(self.rules, ident)
        return found

    def _resolve(self, idents: list[Identifier], row: rows_.Row, source: str) -> _Person:
        """As identifiers.resolve, against what the chunk read up front."""
        keys = [self._key(i) for i in idents]
        owners = sorted({self.held[k].subject_id for k in keys if k in self.held})
        if len(owners) > 1:
            raise identifiers.conflict(owners)
        if owners:
            subject = self.subjects[owners[0]]
            if row.locale and not subject.locale:
                subject.locale, subject.is_changed = row.locale, True
            if row.country and not subject.country:
                subject.country, subject.is_changed = row.country, True
        else:
            subject = _Person(new_id(), row.locale, row.country, is_new=True)
            self.subjects[subject.id] = subject
        for ident, key in zip(idents, keys, strict=True):
            if key not in self.held:
                new = identifiers.new_row(subject.id, ident, key, now=self.now, source=source)
                self.held[key] = _Contact(subject.id, None, new)
        return subject

    def row(
        self,
        row: rows_.Row,
        line: int,
        topic: Topic,
        notice_sha256: str | None,
        idents: list[Identifier],
    ) -> rows_.Outcome:
        rules = self.rules
        is_suppressed = any(k in self.suppressed for i in idents for k in self._suppression_keys(i))
        source = row.source or f"import:{self.job.id}"
        subject = self._resolve(idents, row, source)
        email = next((i for i in idents if i.kind is IdentifierKind.EMAIL), None)
        needs_doi = (
            row.channel == "email"
            and email is not None
            and rules.needs_double_opt_in(row.channel, row.country or subject.country)
        )
        target = rows_.target_status(row, needs_double_opt_in=needs_doi)
        held = self._standings(subject.id)
        outcome = rows_.decide(
            row,
            target,
            stored=held.get(topic),
            channel=held.get(channel_topic(row.channel)) if row.category else None,
            all_marketing=held.get(ALL_MARKETING),
            is_suppressed=is_suppressed,
        )
        if outcome is rows_.Outcome.UNCHANGED:
            return outcome
        details = {
            "import_id": self.job.id,
            "line": line,
            "import_method": str(row.method),
            "consented_at": row.consented_at.isoformat() if row.consented_at else None,
        }
        act = ledger.Act(
            actor=self.job.actor,
            method=Method.IMPORT,
            source=source,
            capture_point=f"import:{self.job.id}",
            locale=row.locale,
            notice_version=row.notice_version,
            notice_sha256=notice_sha256,
            ip=row.ip,
            user_agent=row.user_agent,
        )
        if outcome is rows_.Outcome.RECORD:
            if self._recorded_before(subject.id, topic):
                return rows_.Outcome.UNCHANGED
            drafts = [
                ledger.Draft(
                    Action.IMPORT_RECORDED,
                    subject_id=subject.id,
                    details=details | {"topic": [topic.channel, topic.category, topic.purpose]},
                )
            ]
        else:
            assert target is not None
            topics = [topic]
            if row.category and target is not Status.WITHDRAWN:
                ch = held.get(channel_topic(row.channel))
                if ch is None or ch.status is not Status.GRANTED:
                    topics.insert(0, channel_topic(row.channel))
            action = {
                Status.GRANTED: Action.GRANT,
                Status.PENDING: Action.REQUEST,
                Status.WITHDRAWN: Action.WITHDRAW,
            }[target]
            drafts = [
                ledger.Draft(
                    action,
                    subject_id=subject.id,
                    topic=t,
                    status=target,
                    legal_basis=legal_basis(rules.catalog, t),
                    details=details,
                    consented_at=row.consented_at,
                )
                for t in topics
            ]
            if target is Status.GRANTED and needs_doi and email is not None:
                address = self.held[self._key(email)]
                if address.confirmed_at is None:
                    address.confirmed_at = row.consented_at or self.now
                    address.is_confirmed_now = True
        ledger.append(
            self.session, self.head, act, drafts, now=self.now, batch=self.batch, states=self.states
        )
        return outcome

    def _notice(self, row: rows_.Row) -> str | None:
        if row.notice_version is None:
            return None
        key = (row.notice_version, row.locale)
        if key not in self.notices:
            found = notices.resolve(self.session, row.notice_version, row.locale)
            self.notices[key] = found.sha256 if found else None
        if self.notices[key] is None:
            raise rows_.RowError(
                f"notice_version: {row.notice_version!r} was never published; publish the "
                "legacy wording first (POST /v1/notices)."
            )
        return self.notices[key]

    def _standings(self, subject_id: str) -> dict[Topic, rows_.Held]:
        """The subject's current standings, as the rows of this chunk left them so far."""
        found = {}
        for topic in self.topics:
            state = self.states.get((subject_id, topic.channel, topic.category, topic.purpose))
            if state is not None:
                found[topic] = rows_.Held(state.status, state.consented_at or state.occurred_at)
        return found

    def _recorded_before(self, subject_id: str, topic: Topic) -> bool:
        if (subject_id, topic) in self.recorded:
            return True
        self.recorded.add((subject_id, topic))
        marker = f'"topic":["{topic.channel}","{topic.category}","{topic.purpose}"]'
        return any(
            details and marker in details
            for details in self.session.scalars(
                select(ConsentEvent.details).where(
                    ConsentEvent.subject_id == subject_id,
                    ConsentEvent.action == str(Action.IMPORT_RECORDED),
                )
            )
        )


_SUBJECTS = cast(Table, Subject.__table__)
_IDENTIFIERS = cast(Table, SubjectIdentifier.__table__)
_STATES = cast(Table, ConsentState.__table__)
_WRITTEN = [
    _SUBJECTS,
    _IDENTIFIERS,
    cast(Table, IdentifierVariant.__table__),
    cast(Table, Evidence.__table__),
    cast(Table, ConsentEvent.__table__),
    _STATES,
]
