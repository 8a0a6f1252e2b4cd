"""The changes feed: order, identifiers, erasure, a poller racing concurrent writers, and the
fast item builder against the old one on every kind of change."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from app.domain.consent import channel_topic
from app.domain.rules import Rules
from app.domain.vocabulary import Status
from app.models import ConsentEvent
from app.services.audit import checkpoints
from app.services.changes import feed
from app.services.consent import preferences, subjects
from app.services.consent.preferences import Change
from tests.factories import make_act, make_subscriber
from tests.feed_reference import old_items, varied_ledger


def test_changes_come_in_recorded_order_with_the_subjects_identifiers(
    session: Session, rules: Rules
) -> None:
    subject_id = make_subscriber(session, rules, email="Ada@Example.org")
    preferences.change(
        session, rules, subject_id, [Change(channel_topic("email"), Status.WITHDRAWN)], make_act()
    )

    items, next_after = feed.page(session, 0, 100)

    assert [i["action"] for i in items] == ["request", "request", "confirm", "confirm", "withdraw"]
    assert [int(i["cursor"]) for i in items] == sorted(int(i["cursor"]) for i in items)
    assert next_after == items[-1]["cursor"]
    assert items[-1]["identifiers"] == {
        "email": ["ada@example.org"],
        "phone": [],
        "external_id": [],
    }
    assert items[-1]["channel"] == "email"
    assert items[-1]["status"] == "withdrawn"
    assert all(i["subject_id"] == subject_id for i in items)


def test_an_empty_page_hands_back_the_same_cursor(session: Session, rules: Rules) -> None:
    make_subscriber(session, rules)
    items, next_after = feed.page(session, 0, 100)
    assert feed.page(session, int(next_after), 100) == ([], next_after)
    assert feed.page(session, 0, 0 + 2)[1] == items[1]["cursor"]


def test_erasure_is_an_erased_change_and_no_change_names_the_person_after_it(
    session: Session, rules: Rules
) -> None:
    subject_id = make_subscriber(session, rules)
    subjects.erase(session, rules, subject_id, make_act(actor="admin"))

    items, _ = feed.page(session, 0, 100)

    assert items[-1]["action"] == "erased"
    assert items[-1]["subject_id"] == subject_id
    assert all(i["identifiers"] == {"email": [], "phone": [], "external_id": []} for i in items)


def test_ledger_bookkeeping_is_not_a_change(session: Session, rules: Rules, tmp_path: Path) -> None:
    make_subscriber(session, rules)
    before, cursor = feed.page(session, 0, 100)
    checkpoints.create(session, checkpoints.signing_key(tmp_path / "key.json"))
    assert feed.page(session, int(cursor), 100)[0] == []
    assert len(before) == 4


def test_a_poller_misses_nothing_and_sees_nothing_twice_across_concurrent_writes(
    clean_db: Engine, rules: Rules
) -> None:
    writers, per_writer = 4, 8
    done = threading.Event()
    seen: list[int] = []

    def write(number: int) -> None:
        with Session(clean_db) as own:
            for i in range(per_writer):
                subject_id = make_subscriber(own, rules, email=f"w{number}-{i}@example.org")
                change = [Change(channel_topic("email"), Status.WITHDRAWN)]
                preferences.change(own, rules, subject_id, change, make_act())

    def poll() -> None:
        after = 0
        with Session(clean_db) as own:
            while True:
                finished = done.is_set()  # read before the page: a last pass after the writers
                items, cursor = feed.page(own, after, 7)
                own.rollback()
                seen.extend(int(i["cursor"]) for i in items)
                after = int(cursor)
                if finished and not items:
                    return
                if not items:
                    time.sleep(0.005)

    poller = threading.Thread(target=poll)
    poller.start()
    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    done.set()
    poller.join(timeout=60)

    with Session(clean_db) as own:
        recorded = list(own.scalars(select(ConsentEvent.seq).order_by(ConsentEvent.seq)))
    assert len(recorded) == writers * per_writer * 5  # 2 requests, 2 confirms, 1 withdrawal
    assert seen == recorded


# --- the fast item builder against the shape it replaced -------------------------------------


def test_the_fast_items_are_the_old_items_on_every_kind_of_change(
    session: Session, clean_db: Engine, rules: Rules, tmp_path: Path
) -> None:
    varied_ledger(session, clean_db, rules, tmp_path)
    everything = old_items(session, 0, 1000)
    actions = {i["action"] for i in everything}
    assert actions >= {
        "request",
        "confirm",
        "grant",
        "withdraw",
        "unsubscribe_all",
        "identifier_linked",
        "identifier_unlinked",
        "merge",
        "erased",
    }
    assert any(i["occurred_at"].endswith(":00.000000Z") for i in everything)
    assert any(i["identifiers"]["email"][1:] for i in everything)  # an order to keep
    assert any(i["identifiers"]["external_id"] == ["crm-9"] for i in everything)  # imported

    assert feed.page(session, 0, 1000) == (everything, everything[-1]["cursor"])
    for limit in (1, 2, 7):
        after, pages = 0, []
        while True:
            items, cursor = feed.page(session, after, limit)
            assert items == old_items(session, after, limit)
            if not items:
                break
            pages.extend(items)
            after = int(cursor)
        assert pages == everything
    by_seq = feed.items_for(session, [int(i["cursor"]) for i in everything])
    assert list(by_seq.values()) == everything
