"""The ledger: chained appends, state written with its event, and one straight chain under load."""

from __future__ import annotations

import itertools
from functools import partial

from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session

from app.domain.rules import Rules
from app.domain.vocabulary import Reason, Status
from app.models import ConsentEvent, ConsentState
from app.services.audit import trail
from app.services.consent import checks
from tests.concurrency import at_once
from tests.factories import change_newsletter, make_subscriber


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
