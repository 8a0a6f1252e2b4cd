"""The ledger: chained appends, state written with its event, and one straight chain under load."""

from __future__ import annotations

import itertools
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy import event as sa_event
from sqlalchemy.orm import Session

from app.domain.consent import Topic
from app.domain.rules import Rules
from app.domain.vocabulary import Action, Reason, Status
from app.models import ChainHead, ConsentEvent, ConsentState, Subject
from app.services.audit import trail
from app.services.consent import checks, ledger, subjects
from tests.concurrency import at_once
from tests.factories import change_newsletter, make_act, make_subscriber


def test_each_event_links_to_the_one_before(session: Session, rules: Rules) -> None:
    make_subscriber(session, rules, categories=["newsletter", "offers"])
    events = session.scalars(select(ConsentEvent).order_by(ConsentEvent.seq)).all()
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    for before, after in itertools.pairwise(events):
        assert after.prev_hash == before.hash
    assert trail.verify(session).is_ok


def test_select_all_writes_one_event_per_pair_never_a_bundle(
    session: Session, rules: Rules
) -> None:
    subject_id = make_subscriber(
        session, rules, categories=["newsletter", "offers", "product_updates"]
    )
    confirms = session.scalars(
        select(ConsentEvent).where(
            ConsentEvent.subject_id == subject_id, ConsentEvent.action == "confirm"
        )
    ).all()
    assert sorted((e.channel, e.category or "") for e in confirms) == [
        ("email", ""),
        ("email", "newsletter"),
        ("email", "offers"),
        ("email", "product_updates"),
    ]


def test_current_state_is_written_with_its_event(session: Session, rules: Rules) -> None:
    subject_id = make_subscriber(session, rules)
    change_newsletter(session, rules, subject_id, Status.WITHDRAWN)
    state = session.get(ConsentState, (subject_id, "email", "newsletter", ""))
    assert state is not None
    last = session.scalars(select(ConsentEvent).order_by(ConsentEvent.seq.desc())).first()
    assert last is not None
    assert (state.status, state.event_id, state.event_seq) == ("withdrawn", last.id, last.seq)


def test_events_hold_no_personal_data(session: Session, rules: Rules) -> None:
    make_subscriber(session, rules, email="grace@example.org")
    for event in session.scalars(select(ConsentEvent)):
        flat = " ".join(str(v) for v in event.record().values())
        assert "grace@example.org" not in flat
        assert "198.51.100.7" not in flat


def test_concurrent_writers_keep_one_straight_chain(clean_db: Engine, rules: Rules) -> None:
    with Session(clean_db) as session:
        subject_ids = [make_subscriber(session, rules, email=f"w{i}@example.org") for i in range(8)]

    def writer(subject_id: str) -> None:
        with Session(clean_db) as session:
            for round_ in range(6):
                status = Status.WITHDRAWN if round_ % 2 == 0 else Status.GRANTED
                change_newsletter(session, rules, subject_id, status)

    at_once(*[partial(writer, s) for s in subject_ids])  # raises what any writer raised
    with Session(clean_db) as session:
        result = trail.verify(session)
        count = session.scalar(select(func.count()).select_from(ConsentEvent))
        seqs = session.scalars(select(ConsentEvent.seq).order_by(ConsentEvent.seq)).all()
    assert result.is_ok, result.problem
    assert result.events_checked == count
    assert seqs == list(range(1, len(seqs) + 1))
    # 8 writers x 6 alternating changes, each a real change: every one is an event.
    assert count == 8 * 4 + 8 * 6


def test_the_same_change_sent_twice_at_once_writes_one_event(
    clean_db: Engine, rules: Rules
) -> None:
    with Session(clean_db) as session:
        subject_id = make_subscriber(session, rules)
        before = session.scalar(select(func.count()).select_from(ConsentEvent))

    def withdraw() -> None:
        with Session(clean_db) as session:
            change_newsletter(session, rules, subject_id, Status.WITHDRAWN)

    at_once(withdraw, withdraw)
    with Session(clean_db) as session:
        after = session.scalar(select(func.count()).select_from(ConsentEvent))
        answer = checks.check(
            session,
            rules,
            checks.Question("email", "newsletter"),
            subject_id=subject_id,
        )
    assert after == (before or 0) + 1
    assert answer.decision.reason is Reason.WITHDRAWN


def test_a_read_sent_with_the_lock_sees_what_the_holder_committed(
    clean_db: Engine, rules: Rules
) -> None:
    """`lock_and_read` sends the lock and the read at once (PostgreSQL): the read must still
    run after the lock is granted, so a writer that waited sees the change the holder
    committed meanwhile, and the head it moved."""
    with Session(clean_db) as session:
        subject_id = make_subscriber(session, rules)
    newsletter = Topic("email", "newsletter")
    with Session(clean_db) as holder:
        head = ledger.lock(holder)
        draft = ledger.Draft(
            Action.WITHDRAW, subject_id=subject_id, topic=newsletter, status=Status.WITHDRAWN
        )
        ledger.append(holder, head, make_act(), [draft])
        seq_after = head.last_seq

        def waiter() -> tuple[int, Status]:
            with Session(clean_db) as session:
                waited, _, current = subjects.locked_standings(session, subject_id)
                session.rollback()
                return waited.last_seq, current[newsletter].status

        with ThreadPoolExecutor(1) as pool:
            waited = pool.submit(waiter)
            _wait_for_a_lock_wait(clean_db)
            assert not waited.done()  # it waits for the holder
            holder.commit()
            assert waited.result(timeout=30) == (seq_after, Status.WITHDRAWN)


def _wait_for_a_lock_wait(engine: Engine) -> None:
    if engine.dialect.name != "postgresql":
        time.sleep(0.5)  # SQLite: the waiter sits in its busy timeout
        return
    query = text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")
    with engine.connect() as connection:
        for _ in range(200):
            if connection.execute(query).scalar():
                return
            time.sleep(0.05)
    raise AssertionError("nobody waited for the chain lock")


def test_editing_a_row_by_hand_breaks_verification_at_that_event(
    session: Session, rules: Rules
) -> None:
    make_subscriber(session, rules, categories=["newsletter", "offers"])
    session.execute(text("UPDATE consent_events SET category = 'product_updates' WHERE seq = 3"))
    session.execute(text("UPDATE consent_events SET status = 'withdrawn' WHERE seq = 5"))
    session.commit()
    result = trail.verify(session)
    assert (result.is_ok, result.first_bad_seq) == (False, 3)


def test_deleting_a_row_by_hand_is_found(session: Session, rules: Rules) -> None:
    make_subscriber(session, rules, categories=["newsletter", "offers"])
    session.execute(text("DELETE FROM consent_events WHERE seq = 4"))
    session.commit()
    result = trail.verify(session)
    assert (result.is_ok, result.first_bad_seq) == (False, 4)


def test_deleting_the_last_row_by_hand_is_found(session: Session, rules: Rules) -> None:
    make_subscriber(session, rules)
    last = session.scalar(select(func.max(ConsentEvent.seq)))
    session.execute(text("DELETE FROM consent_events WHERE seq = :s"), {"s": last})
    session.commit()
    result = trail.verify(session)
    assert (result.is_ok, result.first_bad_seq) == (False, last)


def test_reordering_rows_by_hand_is_found(session: Session, rules: Rules) -> None:
    make_subscriber(session, rules, categories=["newsletter", "offers"])
    session.execute(text("UPDATE consent_events SET seq = -1 WHERE seq = 2"))
    session.execute(text("UPDATE consent_events SET seq = 2 WHERE seq = 3"))
    session.execute(text("UPDATE consent_events SET seq = 3 WHERE seq = -1"))
    session.commit()
    result = trail.verify(session)
    assert (result.is_ok, result.first_bad_seq) == (False, 2)


def test_a_change_holds_the_lock_for_five_statements_and_evidence(
    clean_db: Engine, rules: Rules, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Lock, then: subject and standings read at once, events inserted, state upserted (no
    read of it first, no autoflush), the webhook deliveries, the head moved; the act's
    evidence row is one more. The ORM append took 12 here.

    SQLite runs them one by one (in process, no round trips). PostgreSQL sends the lock
    and the read in one pipeline (one round trip, psycopg's pipeline mode), and every write
    after them in another, the deliveries as one INSERT … SELECT that reads the receivers
    itself, and the COMMIT with them."""
    with Session(clean_db) as session:
        subject_id = make_subscriber(session, rules)
    sent: list[tuple[str, bool]] = []  # (first word, queued in a pipeline)
    real_lock, real_lock_and_read = ledger.lock, ledger.lock_and_read
    postgresql = clean_db.dialect.name == "postgresql"

    def lock_and_read(session: Session, *args: Any) -> Any:
        if postgresql:
            import psycopg

            class Recording(psycopg.Cursor[Any]):
                def execute(self, query: Any, *args: Any, **kwargs: Any) -> Any:
                    sent.append((str(query).split()[0], self.connection._pipeline is not None))
                    return super().execute(query, *args, **kwargs)

                def executemany(self, query: Any, *args: Any, **kwargs: Any) -> None:
                    sent.append((str(query).split()[0], self.connection._pipeline is not None))
                    super().executemany(query, *args, **kwargs)

            driver = session.connection().connection.driver_connection
            monkeypatch.setattr(driver, "cursor_factory", Recording)
        return real_lock_and_read(session, *args)

    def lock(session: Session, chain_id: str = ledger.CHAIN_ID) -> ChainHead:
        head = real_lock(session, chain_id)  # SQLite's way: the lock, then the read
        if not postgresql:
            sa_event.listen(session.connection(), "before_cursor_execute", count)
        return head

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        sent.append((statement.split()[0], False))

    monkeypatch.setattr(ledger, "lock", lock)
    monkeypatch.setattr(ledger, "lock_and_read", lock_and_read)
    with Session(clean_db) as session:
        change_newsletter(session, rules, subject_id, Status.WITHDRAWN)
    if postgresql:
        assert sent == [("SELECT", True)] * 2 + [("INSERT", True)] * 4 + [("UPDATE", True)]
    else:
        assert [word for word, _ in sent] == [
            *("SELECT", "INSERT", "INSERT", "INSERT", "SELECT", "UPDATE")
        ]
    with Session(clean_db) as session:
        assert trail.verify(session).is_ok
        state = session.get(ConsentState, (subject_id, "email", "newsletter", ""))
        assert state is not None
        assert state.status == "withdrawn"


def test_a_batch_is_planned_into_the_state_map_and_written_at_once(
    session: Session, rules: Rules
) -> None:
    """An import's appends: each one updates the plain state map it is given (a later row
    sees an earlier one), and nothing is written until `write`; then it verifies."""
    subject_id = make_subscriber(session, rules)
    head = ledger.lock(session)
    before = session.scalar(select(func.count()).select_from(ConsentEvent)) or 0
    batch, states = ledger.Batch(), dict[ledger.StateKey, ledger.Stored]()
    topic = Topic("email", "newsletter")
    for status in (Status.WITHDRAWN, Status.GRANTED, Status.WITHDRAWN):
        ledger.append(
            session,
            head,
            make_act(),
            [ledger.Draft(Action.GRANT, subject_id=subject_id, topic=topic, status=status)],
            batch=batch,
            states=states,
        )
        assert states[(subject_id, "email", "newsletter", "")].status is status
    assert session.scalar(select(func.count()).select_from(ConsentEvent)) == before
    assert (len(batch.events), len(batch.states), len(batch.evidence)) == (3, 1, 3)
    ledger.write(session, batch, batch.events[-1]["occurred_at"])
    session.commit()
    assert session.scalar(select(func.count()).select_from(ConsentEvent)) == before + 3
    state = session.get(ConsentState, (subject_id, "email", "newsletter", ""))
    assert state is not None
    assert (state.status, state.event_seq) == ("withdrawn", head.last_seq)
    assert trail.verify(session).is_ok


@pytest.mark.parametrize("last", [False, True], ids=["in-transaction", "commit-in-pipeline"])
def test_a_failed_pipelined_write_is_the_database_error_sqlalchemy_would_raise(
    session: Session, rules: Rules, clean_db: Engine, last: bool
) -> None:
    """On PostgreSQL the ledger sends its writes in psycopg's pipeline mode, beside SQLAlchemy:
    an error there must still reach app/errors.py as SQLAlchemy's own (here IntegrityError),
    and with the COMMIT queued after the writes (`last=True`) nothing of it may commit."""
    from sqlalchemy.exc import IntegrityError
    from sqlalchemy.orm.attributes import set_committed_value

    if session.get_bind().dialect.name != "postgresql":
        pytest.skip("the pipelined write is PostgreSQL's")
    subject_id = make_subscriber(session, rules)
    head = ledger.lock(session)
    set_committed_value(head, "last_seq", head.last_seq - 1)  # the next seq is taken already
    draft = ledger.Draft(
        Action.WITHDRAW, subject_id, Topic("email", "newsletter"), Status.WITHDRAWN
    )
    with pytest.raises(IntegrityError):
        ledger.append(session, head, make_act(), [draft], last=last)
    session.rollback()
    with clean_db.connect() as other:
        assert other.scalar(select(func.count()).select_from(ConsentEvent)) == head.last_seq
        assert other.scalar(select(ChainHead.last_seq)) == head.last_seq
    assert trail.verify(session).is_ok


def test_an_append_that_ends_the_use_case_commits_with_what_the_use_case_changed(
    session: Session, rules: Rules, clean_db: Engine
) -> None:
    """`append(last=True)`: on PostgreSQL the COMMIT rides with the writes. An ORM change made
    before it (a dirty row) must be in that same commit, not left for a transaction after."""
    subject_id = make_subscriber(session, rules)
    head = ledger.lock(session)
    subject = session.get(Subject, subject_id)
    assert subject is not None
    assert subject.locale != "de"
    was = subject.locale
    subject.locale = "de"  # dirty: flushed before the pipelined COMMIT
    draft = ledger.Draft(
        Action.WITHDRAW, subject_id, Topic("email", "newsletter"), Status.WITHDRAWN
    )
    (event,) = ledger.append(session, head, make_act(), [draft], last=True)
    with clean_db.connect() as other:  # the head and the subject's row: both or neither yet
        seen = other.execute(
            select(
                select(ChainHead.last_seq).scalar_subquery(),
                select(Subject.locale).where(Subject.id == subject_id).scalar_subquery(),
            )
        ).one()
        assert tuple(seen) in {(event["seq"], "de"), (event["seq"] - 1, was)}
    session.commit()
    with clean_db.connect() as other:
        assert other.scalar(select(ChainHead.last_seq)) == event["seq"]
        assert other.scalar(select(Subject.locale).where(Subject.id == subject_id)) == "de"
        state = other.execute(
            select(ConsentState.status, ConsentState.event_seq).where(
                ConsentState.subject_id == subject_id, ConsentState.category == "newsletter"
            )
        ).one()
        assert tuple(state) == ("withdrawn", event["seq"])
    assert trail.verify(session).is_ok
