"""The ledger: the one writer of consent events, their evidence and the current state.

Every write use case calls `lock` first, appends with `append`, and commits once. The lock is
the chain head's row (PostgreSQL `FOR UPDATE`; SQLite's write lock, taken by the first
statement), so concurrent writers form one straight chain, and a use case that reads state
after the lock sees every change committed before it: the same change sent twice at once
writes one event.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, insert, or_, select, tuple_, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from app.database import PreparedSelect, insert_many, upsert_many
from app.domain.chain import GENESIS_HASH, canonical_json, event_hash
from app.domain.consent import PreferencesView, Standing, Topic, preferences_view
from app.domain.errors import UnpublishedNoticeError
from app.domain.records import evidence_digest
from app.domain.rules import Rules
from app.domain.vocabulary import Action, LegalBasis, Method, Status
from app.models import ChainHead, ConsentEvent, ConsentState, Evidence, new_id, utcnow
from app.services.consent import suppression

EVIDENCE_HASHED = ("nonce", "ip", "user_agent", "country", "details", "created_at")
CHAIN_ID = "main"  # one chain for now; shard by subject later without changing the format


@dataclass(frozen=True)
class Act:
    """Who did something, how, and where: the proof shared by every event of one act."""

    actor: str
    method: Method
    source: str | None = None
    capture_point: str | None = None
    locale: str | None = None
    notice_version: str | None = None
    notice_sha256: str | None = None
    ip: str | None = None
    user_agent: str | None = None
    country: str | None = None
    evidence: Mapping[str, Any] = field(default_factory=dict)

    @property
    def has_evidence(self) -> bool:
        return bool(self.ip or self.user_agent or self.country or self.evidence)


@dataclass(frozen=True)
class Draft:
    """An event about to be appended."""

    action: Action
    subject_id: str | None = None
    topic: Topic | None = None
    status: Status | None = None
    legal_basis: LegalBasis | None = None
    details: Mapping[str, Any] | None = None
    consented_at: datetime | None = None  # when given elsewhere (an imported row)


def lock(session: Session, chain_id: str = CHAIN_ID) -> ChainHead:
    """Take the chain's write lock. Must be the first statement of the transaction."""
    if session.new or session.dirty or session.deleted:
        raise RuntimeError("ledger.lock() must come before any write of the use case")
    if session.get_bind().dialect.name == "sqlite":
        # SQLite cannot turn a read transaction into a write one once another writer has
        # committed, so end whatever was read before and make the write lock the first
        # statement of a fresh transaction.
        if session.in_transaction():
            session.commit()
        session.execute(
            update(ChainHead)
            .where(ChainHead.chain_id == chain_id)
            .values(last_seq=ChainHead.last_seq)
        )
    head = session.get(ChainHead, chain_id, with_for_update=True, populate_existing=True)
    if head is None:
        head = ChainHead(
            chain_id=chain_id,
            last_seq=0,
            last_hash=GENESIS_HASH,
            base_seq=0,
            base_hash=GENESIS_HASH,
        )
        session.add(head)
        session.flush()
    return head


def lock_and_read(
    session: Session, read: PreparedSelect, params: Mapping[str, Any], chain_id: str = CHAIN_ID
) -> tuple[ChainHead, list[Any]]:
    """`lock`, then `read`'s rows as they stand once the lock is held.

    On PostgreSQL both statements travel in one round trip (psycopg's pipeline mode): the
    server runs the read after the lock is granted, as a statement of its own with its own
    snapshot, so it sees every write committed before the lock, as a read sent after `lock`
    returns would; the chain lock is held one round trip less. The head comes back as a
    plain `ChainHead` outside the session, which `append` moves itself (`last=True` or not,
    never with a `batch`). Elsewhere: `lock`, then the read."""
    if session.get_bind().dialect.name != "postgresql":
        head = lock(session, chain_id)
        return head, read.rows(session, params)
    if session.new or session.dirty or session.deleted:
        raise RuntimeError("ledger.lock_and_read() must come before any write of the use case")
    connection = session.connection()
    sql, given = read.bound(connection.dialect, params)
    driver: Any = connection.connection.driver_connection  # a psycopg.Connection
    with (
        _as_sqlalchemy_errors(session, "ledger: lock and read"),
        driver.cursor() as locking,
        driver.cursor() as reading,
    ):
        with driver.pipeline():
            locking.execute(_LOCK_SQL, {"chain_id": chain_id})
            reading.execute(sql, given)
        found, raw = locking.fetchone(), reading.fetchall()
    if found is None:  # a chain's first write: `lock` makes its head
        head = lock(session, chain_id)
        return head, read.rows(session, params)
    last_seq, last_hash, base_seq, base_hash = found
    head = ChainHead(
        chain_id=chain_id,
        last_seq=last_seq,
        last_hash=last_hash,
        base_seq=base_seq,
        base_hash=base_hash,
    )
    return head, read.typed(connection.dialect, raw)


@contextmanager
def _as_sqlalchemy_errors(session: Session, what: str) -> Iterator[None]:
    """A psycopg error raised as SQLAlchemy would have raised it (OperationalError,
    IntegrityError, ...), so that app/errors.py answers it as every other database error."""
    import psycopg

    try:
        yield
    except psycopg.Error as error:
        raise DBAPIError.instance(
            what, None, error, psycopg.Error, dialect=session.get_bind().dialect
        ) from error


def cited(session: Session, act: Act) -> Act:
    """The act with the hash of the notice it cites; UnpublishedNoticeError if there is none.

    Use cases call it before they write, so a bad citation is refused even when nothing
    would change; `append` calls it again for every act.
    """
    if not act.notice_version or act.notice_sha256 is not None:
        return act
    from app.services.consent.notices import resolve  # notices writes through the ledger too

    notice = resolve(session, act.notice_version, act.locale)
    if notice is None:
        message = f"Notice version {act.notice_version!r} was never published."
        raise UnpublishedNoticeError(message, {"notice_version": [message]})
    return replace(act, notice_sha256=notice.sha256)


StateKey = tuple[str, str, str, str]  # subject_id, channel, category, purpose


@dataclass(frozen=True, slots=True)
class Stored:
    """A consent_state row as plain data: what a bulk writer (an import) keeps in hand."""

    status: Status
    event_seq: int
    occurred_at: datetime
    consented_at: datetime | None = None


@dataclass
class Batch:
    """Rows planned by `append(..., batch=)`, written together by `write`: an import plans a
    whole chunk's events, state and evidence and writes them in three statements."""

    events: list[dict[str, Any]] = field(default_factory=list)
    states: dict[StateKey, dict[str, Any]] = field(default_factory=dict)
    evidence: list[dict[str, Any]] = field(default_factory=list)


def evidence_row(subject_id: str | None, act: Act, now: datetime) -> dict[str, Any]:
    """The evidence row of an act (IP, user agent, country, details), with its hash."""
    row: dict[str, Any] = {
        "subject_id": subject_id,
        "nonce": secrets.token_hex(16),
        "ip": act.ip,
        "user_agent": act.user_agent,
        "country": act.country,
        "details": canonical_json(dict(act.evidence)) if act.evidence else None,
        "created_at": now,
    }
    row["hash"] = evidence_digest({name: row[name] for name in EVIDENCE_HASHED})
    return row


def record_evidence(
    session: Session, subject_id: str | None, act: Act, now: datetime
) -> str | None:
    if not act.has_evidence:
        return None
    row = evidence_row(subject_id, act, now)
    session.execute(insert(_EVIDENCE), [row])
    return str(row["hash"])


def append(
    session: Session,
    head: ChainHead,
    act: Act,
    drafts: Sequence[Draft],
    *,
    now: datetime | None = None,
    evidence_hash: str | None = None,
    batch: Batch | None = None,
    states: dict[StateKey, Stored] | None = None,
    last: bool = False,
) -> list[dict[str, Any]]:
    """Append one event per draft to the locked chain and set the current state with it.

    The events are planned and hashed here, then written with one executemany INSERT and the
    state with one executemany upsert: no ORM unit of work and no read of the state. The
    head moves in memory and is written once, by the commit's flush. Returns the events as
    plain records (keyed by `chain.FIELDS`' names).

    A bulk writer (an import) passes a `batch`, which `write` later writes for many appends
    at once, and `states`, its map of the state rows in hand, which each append updates so
    that a later row sees an earlier one's effect.

    `last=True` says the append ends the use case, whose `session.commit()` follows: on
    PostgreSQL the COMMIT then travels in the writes' round trip, so the chain lock is held
    one round trip less (and the session's commit finds nothing left to send).
    """
    occurred_at = now or utcnow()
    act = cited(session, act)
    planned = batch if batch is not None else Batch()
    if evidence_hash is None and act.has_evidence:
        subject_ids = {d.subject_id for d in drafts}
        row = evidence_row(
            next(iter(subject_ids)) if len(subject_ids) == 1 else None, act, occurred_at
        )
        planned.evidence.append(row)
        evidence_hash = row["hash"]
    records = []
    seq, prev_hash = head.last_seq, head.last_hash
    for draft in drafts:
        topic = draft.topic
        seq += 1
        record: dict[str, Any] = {
            "chain_id": head.chain_id,
            "seq": seq,
            "id": new_id(),
            "occurred_at": occurred_at,
            "subject_id": draft.subject_id,
            "channel": (topic.channel or None) if topic else None,
            "category": (topic.category or None) if topic else None,
            "purpose": (topic.purpose or None) if topic else None,
            "action": str(draft.action),
            "status": str(draft.status) if draft.status else None,
            "legal_basis": str(draft.legal_basis) if draft.legal_basis else None,
            "method": str(act.method),
            "source": act.source,
            "actor": act.actor,
            "capture_point": act.capture_point,
            "locale": act.locale,
            "notice_version": act.notice_version,
            "notice_sha256": act.notice_sha256,
            "evidence_hash": evidence_hash,
            "details": canonical_json(dict(draft.details)) if draft.details else None,
            "prev_hash": prev_hash,
        }
        record["hash"] = prev_hash = event_hash(record)
        records.append(record)
        if topic is not None and draft.status is not None and draft.subject_id:
            key = (draft.subject_id, topic.channel, topic.category, topic.purpose)
            planned.states[key] = {  # the last event on a topic is its standing
                "subject_id": draft.subject_id,
                "channel": topic.channel,
                "category": topic.category,
                "purpose": topic.purpose,
                "status": record["status"],
                "event_seq": seq,
                "event_id": record["id"],
                "occurred_at": occurred_at,
                "consented_at": draft.consented_at,
            }
            if states is not None:
                states[key] = Stored(draft.status, seq, occurred_at, draft.consented_at)
    planned.events.extend(records)
    if batch is None and session.get_bind().dialect.name == "postgresql":
        _pipelined(session, planned, occurred_at, head.chain_id, seq, prev_hash, commit=last)
        set_committed_value(head, "last_seq", seq)  # written just now, not by a flush
        set_committed_value(head, "last_hash", prev_hash)
        return records
    head.last_seq, head.last_hash = seq, prev_hash  # written once, by the commit's flush
    if batch is None:
        write(session, planned, occurred_at)
    return records


def _pipelined(
    session: Session,
    batch: Batch,
    now: datetime,
    chain_id: str,
    seq: int,
    last_hash: str,
    *,
    commit: bool = False,
) -> None:
    """`write` and the head's move in one round trip on PostgreSQL: plain SQL queued in
    psycopg's pipeline mode on the session's own connection, sent together and waited for
    once when the block ends (which raises the first error among them). With `commit`, the
    COMMIT is queued last: after an error the pipeline skips it and the transaction stays
    open to be rolled back. The ORM does not run in pipeline mode: whatever the use case
    added or changed before is flushed first."""
    from app.services.delivery import webhooks  # which reads the feed, which reads the ledger

    if session.new or session.deleted or (commit and session.dirty):
        session.flush()
    driver: Any = session.connection().connection.driver_connection  # a psycopg.Connection
    with (
        _as_sqlalchemy_errors(session, "ledger: pipelined write"),
        driver.cursor() as cursor,
        driver.pipeline(),
    ):
        if batch.evidence:
            cursor.executemany(_insert_sql(_EVIDENCE, batch.evidence[0]), batch.evidence)
        if batch.events:
            cursor.executemany(_insert_sql(_EVENTS, batch.events[0]), batch.events)
        if batch.states:
            cursor.executemany(_STATE_UPSERT_SQL, list(batch.states.values()))
        deliveries = webhooks.queued(batch.events, now)
        if deliveries:
            cursor.executemany(webhooks.QUEUE_SQL, deliveries)
        cursor.execute(_MOVE_HEAD_SQL, {"seq": seq, "hash": last_hash, "chain_id": chain_id})
        if commit:
            driver.commit()
    batch.events, batch.states, batch.evidence = [], {}, []


def _insert_sql(table: Table, row: Mapping[str, Any]) -> str:
    columns = ", ".join(f'"{name}"' for name in row)
    values = ", ".join(f"%({name})s" for name in row)
    return f'INSERT INTO "{table.name}" ({columns}) VALUES ({values})'


def write(session: Session, batch: Batch, now: datetime) -> None:
    """A batch's evidence and events (`database.insert_many`: a COPY for a large batch on
    PostgreSQL), its state (`database.upsert_many`: the same, through a staging table), and
    the webhook deliveries of its changes, in the caller's transaction.

    Whatever the use case added before (a new subject, a deletion) is flushed first, once;
    nothing autoflushes while the statements run.
    """
    from app.services.delivery import webhooks  # which reads the feed, which reads the ledger

    if session.new or session.deleted:
        session.flush()
    with session.no_autoflush:
        insert_many(session, _EVIDENCE, batch.evidence)
        insert_many(session, _EVENTS, batch.events)
        upsert_many(
            session, _STATES, list(batch.states.values()), keys=_STATE_KEY, update=_STATE_SET
        )
        # In this transaction: a change and its webhook deliveries commit together or not at all.
        webhooks.enqueue(session, batch.events, now)
    batch.events, batch.states, batch.evidence = [], {}, []


_EVENTS = cast(Table, ConsentEvent.__table__)
_STATES = cast(Table, ConsentState.__table__)
_EVIDENCE = cast(Table, Evidence.__table__)
_STATE_KEY = ("subject_id", "channel", "category", "purpose")
_STATE_SET = ("status", "event_seq", "event_id", "occurred_at", "consented_at")
_STATE_UPSERT_SQL = (
    _insert_sql(
        _STATES,
        dict.fromkeys((*_STATE_KEY, *_STATE_SET)),
    )
    + f" ON CONFLICT ({', '.join(_STATE_KEY)}) DO UPDATE SET "
    + ", ".join(f"{name} = EXCLUDED.{name}" for name in _STATE_SET)
)
_LOCK_SQL = (
    "SELECT last_seq, last_hash, base_seq, base_hash"
    f' FROM "{cast(Table, ChainHead.__table__).name}" WHERE chain_id = %(chain_id)s FOR UPDATE'
)
_MOVE_HEAD_SQL = (
    f'UPDATE "{cast(Table, ChainHead.__table__).name}"'
    " SET last_seq = %(seq)s, last_hash = %(hash)s WHERE chain_id = %(chain_id)s"
)


def standings(
    session: Session, subject_id: str, topics: Iterable[Topic] | None = None
) -> dict[Topic, Standing]:
    """Current standings of a subject, for all topics or just those named."""
    query = (
        select(ConsentState)
        .where(ConsentState.subject_id == subject_id)
        .execution_options(populate_existing=True)
    )
    wanted = list(topics) if topics is not None else None
    if wanted is not None:
        query = query.where(
            tuple_(ConsentState.channel, ConsentState.category, ConsentState.purpose).in_(
                [(t.channel, t.category, t.purpose) for t in wanted]
            )
            if wanted
            else or_(False)
        )
    return {
        Topic(row.channel, row.category, row.purpose): standing_of(row)
        for row in session.scalars(query)
    }


def has_been_granted(session: Session, subject_id: str, topic: Topic) -> bool:
    """Whether any event ever granted this topic (a confirmed address stays proven)."""
    events = ConsentEvent.__table__.c
    found = session.scalar(
        select(events.seq)
        .where(
            events.subject_id == subject_id,
            events.channel == (topic.channel or None),
            events.category.is_(None) if not topic.category else events.category == topic.category,
            events.purpose.is_(None),
            events.status == str(Status.GRANTED),
        )
        .limit(1)
    )
    return found is not None


def standing_of(row: ConsentState) -> Standing:
    return Standing(Status(row.status), row.event_seq, row.occurred_at, row.event_id)


def history(
    session: Session, subject_id: str
) -> tuple[list[ConsentEvent], dict[str | None, Evidence]]:
    """A subject's events in chain order, and the evidence rows they name, by hash."""
    events = session.scalars(
        select(ConsentEvent).where(ConsentEvent.subject_id == subject_id).order_by(ConsentEvent.seq)
    ).all()
    evidence: dict[str | None, Evidence] = {
        row.hash: row
        for row in session.scalars(select(Evidence).where(Evidence.subject_id == subject_id))
    }
    return list(events), evidence


def current_view(
    session: Session, rules: Rules, subject_id: str, *, now: datetime
) -> PreferencesView:
    """What the subject's events add up to now, per topic, as pages and answers show it."""
    return view_of(
        rules,
        standings(session, subject_id),
        now,
        is_suppressed=suppression.is_suppressed(session, rules, subject_id=subject_id),
    )


def after(
    current: Mapping[Topic, Standing], events: Sequence[Mapping[str, Any]]
) -> dict[Topic, Standing]:
    """The standings once `events` (as `append` returns them) are appended: what a read
    after them would return."""
    standings = dict(current)
    for event in events:
        if event["status"] is not None and event["subject_id"]:
            topic = Topic(event["channel"] or "", event["category"] or "", event["purpose"] or "")
            standings[topic] = Standing(
                Status(event["status"]), event["seq"], event["occurred_at"], event["id"]
            )
    return standings


def view_of(
    rules: Rules, standings: Mapping[Topic, Standing], now: datetime, *, is_suppressed: bool
) -> PreferencesView:
    """`current_view` from standings already in hand (a write's, once it has committed)."""
    return preferences_view(
        rules.catalog,
        standings,
        is_suppressed=is_suppressed,
        now=now,
        max_age=rules.max_consent_age,
    )
