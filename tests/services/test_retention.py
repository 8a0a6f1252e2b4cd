"""Retention with a fake clock: what goes, what stays, and that the chain still verifies."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from app.domain.rules import Rules
from app.models import (
    AccessLog,
    ChainHead,
    ConsentEvent,
    ConsentState,
    Evidence,
    OutboxMessage,
    SubjectIdentifier,
    SubscriptionRequest,
    Webhook,
    WebhookDelivery,
)
from app.services.audit import retention, trail
from app.services.consent import ledger, subjects
from app.services.delivery import mail
from tests.factories import make_act, make_subscriber

T0 = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)
PERIODS = retention.Periods(
    pending=timedelta(days=30), evidence=timedelta(days=3 * 365), proof=timedelta(days=3 * 365)
)


def count(session: Session, model: type[Any], *where: Any) -> int:
    return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def test_unconfirmed_requests_go_after_the_pending_period_with_their_evidence(
    session: Session, rules: Rules
) -> None:
    old = make_subscriber(session, rules, email="old@example.org", confirmed=False, now=T0)
    fresh_time = T0 + timedelta(days=20)
    make_subscriber(session, rules, email="new@example.org", confirmed=False, now=fresh_time)
    report = retention.run(session, PERIODS, now=T0 + timedelta(days=31))
    assert report.requests_removed == 1
    assert report.evidence_removed == 1
    assert count(session, SubscriptionRequest) == 1
    assert count(session, Evidence, Evidence.subject_id == old) == 0
    states = session.scalars(select(ConsentState.status).where(ConsentState.subject_id == old))
    assert set(states) == {"withdrawn"}
    closing = session.scalars(
        select(ConsentEvent).where(
            ConsentEvent.subject_id == old, ConsentEvent.action == "withdraw"
        )
    ).all()
    assert len(closing) == report.pending_closed
    assert all(json.loads(e.details or "{}")["reason"] == "confirmation_expired" for e in closing)


def test_a_request_inside_the_pending_period_is_kept(session: Session, rules: Rules) -> None:
    make_subscriber(session, rules, confirmed=False, now=T0)
    report = retention.run(session, PERIODS, now=T0 + timedelta(days=29))
    assert report.requests_removed == 0
    assert count(session, SubscriptionRequest) == 1


def test_each_run_is_logged_as_an_event_with_its_counts(session: Session, rules: Rules) -> None:
    make_subscriber(session, rules, confirmed=False, now=T0)
    report = retention.run(session, PERIODS, now=T0 + timedelta(days=40))
    event = session.get(ConsentEvent, report.event_seq)
    assert event is not None
    assert event.action == "retention_run"
    details = json.loads(event.details or "{}")
    assert details["requests_removed"] == 1
    assert details["base_seq"] == 0
    assert details["periods_days"] == {
        "pending": 30,
        "evidence": 1095,
        "proof": 1095,
        "access_log": 30,
        "mail": 7,
        "webhook_log": 30,
    }
    assert details["identifiers_removed"] == 1


def erased_subscriber(session: Session, rules: Rules, email: str, when: datetime) -> str:
    subject_id = make_subscriber(session, rules, email=email, now=when)
    subjects.erase(session, rules, subject_id, make_act(), now=when + timedelta(days=1))
    return subject_id


def test_proof_goes_three_years_after_processing_ended_and_the_chain_still_verifies(
    session: Session, rules: Rules
) -> None:
    gone = erased_subscriber(session, rules, "gone@example.org", T0)
    later = T0 + timedelta(days=400)
    kept = make_subscriber(session, rules, email="kept@example.org", now=later)
    report = retention.run(session, PERIODS, now=T0 + timedelta(days=3 * 365 + 5))
    assert report.events_removed > 0
    assert count(session, ConsentEvent, ConsentEvent.subject_id == gone) == 0
    assert count(session, ConsentEvent, ConsentEvent.subject_id == kept) > 0
    head = session.get(ChainHead, "main")
    assert head is not None
    assert head.base_seq == report.base_seq > 0
    assert trail.verify(session).is_ok


def test_proof_of_a_subject_still_subscribed_is_kept_and_pins_the_chain(
    session: Session, rules: Rules
) -> None:
    active = make_subscriber(session, rules, email="active@example.org", now=T0)
    erased_subscriber(session, rules, "gone@example.org", T0 + timedelta(days=1))
    report = retention.run(session, PERIODS, now=T0 + timedelta(days=5 * 365))
    assert report.events_removed == 0
    assert count(session, ConsentEvent, ConsentEvent.subject_id == active) > 0


def test_proof_inside_the_period_is_kept(session: Session, rules: Rules) -> None:
    erased_subscriber(session, rules, "gone@example.org", T0)
    report = retention.run(session, PERIODS, now=T0 + timedelta(days=3 * 365 - 10))
    assert report.events_removed == 0


def test_deleting_the_first_remaining_event_by_hand_is_caught(
    session: Session, rules: Rules
) -> None:
    erased_subscriber(session, rules, "gone@example.org", T0)
    make_subscriber(session, rules, email="kept@example.org", now=T0 + timedelta(days=400))
    report = retention.run(session, PERIODS, now=T0 + timedelta(days=3 * 365 + 5))
    first = report.base_seq + 1
    victim = session.get(ConsentEvent, first)
    assert victim is not None
    session.execute(delete(ConsentEvent).where(ConsentEvent.seq == first))
    session.commit()
    result = trail.verify(session)
    assert not result.is_ok
    assert result.first_bad_seq == first
    # Hiding it by moving the base too is caught by the base the retention run recorded.
    session.execute(update(ChainHead).values(base_seq=victim.seq, base_hash=victim.hash))
    session.commit()
    result = trail.verify(session)
    assert not result.is_ok
    assert result.first_bad_seq == first


def test_moving_the_base_without_a_retention_run_is_caught(session: Session, rules: Rules) -> None:
    make_subscriber(session, rules, now=T0)
    first = session.get(ConsentEvent, 1)
    assert first is not None
    session.execute(delete(ConsentEvent).where(ConsentEvent.seq == 1))
    session.execute(update(ChainHead).values(base_seq=1, base_hash=first.hash))
    session.commit()
    result = trail.verify(session)
    assert not result.is_ok
    assert result.first_bad_seq == 1


def test_orphaned_evidence_goes_after_the_pending_period(session: Session, rules: Rules) -> None:
    with session.begin():
        ledger.record_evidence(session, None, make_act(), T0)
    report = retention.run(session, PERIODS, now=T0 + timedelta(days=31))
    assert report.evidence_removed == 1
    assert count(session, Evidence) == 0


def test_an_address_known_only_from_an_unconfirmed_signup_goes_with_it(
    session: Session, rules: Rules
) -> None:
    unconfirmed = make_subscriber(
        session, rules, email="never@example.org", confirmed=False, now=T0
    )
    confirmed = make_subscriber(session, rules, email="yes@example.org", now=T0)
    report = retention.run(session, PERIODS, now=T0 + timedelta(days=31))
    assert report.identifiers_removed == 1
    assert count(session, SubjectIdentifier, SubjectIdentifier.subject_id == unconfirmed) == 0
    assert count(session, SubjectIdentifier, SubjectIdentifier.subject_id == confirmed) == 1
    values = session.scalars(select(SubjectIdentifier.value))
    assert "never@example.org" not in set(values)


def test_the_page_access_log_goes_after_30_days(session: Session, rules: Rules) -> None:
    subject_id = make_subscriber(session, rules, now=T0)
    for days in (0, 25):
        session.add(
            AccessLog(
                subject_id=subject_id,
                occurred_at=T0 + timedelta(days=days),
                page="privacy",
                ip="198.51.100.7",
                user_agent="pytest",
            )
        )
    session.commit()
    report = retention.run(session, PERIODS, now=T0 + timedelta(days=31))
    assert report.access_log_removed == 1
    [kept] = session.scalars(select(AccessLog)).all()
    assert kept.occurred_at == T0 + timedelta(days=25)


def test_undelivered_mail_and_old_eml_files_go_after_the_mail_period(
    session: Session, rules: Rules, tmp_path: Path
) -> None:
    make_subscriber(session, rules, now=T0)
    rendered = mail.Rendered("hello", "en", "Hello", "Hi.\n", None, "v1", "0" * 64)
    for days in (0, 6):
        mail.enqueue(
            session,
            rendered,
            to="ada@example.org",
            mail_from="cc@example.org",
            subject_id=None,
            now=T0 + timedelta(days=days),
        )
    session.commit()
    outbox = tmp_path / "outbox"
    transport = mail.FileTransport(outbox)
    for name in ("old", "new"):
        message = EmailMessage()
        message["To"] = "ada@example.org"
        message["Message-ID"] = f"<{name}@example.org>"
        message.set_content("Hi Ada.")
        transport.send(message)
    [old_file] = outbox.glob("*old_at_example.org.eml")
    aged = (T0 + timedelta(days=1)).timestamp()
    os.utime(old_file, (aged, aged))
    newer = (T0 + timedelta(days=6)).timestamp()
    [new_file] = outbox.glob("*new_at_example.org.eml")
    os.utime(new_file, (newer, newer))
    report = retention.run(session, PERIODS, now=T0 + timedelta(days=9), mail_files=outbox)
    assert (report.mail_given_up, report.mail_files_removed) == (1, 1)
    assert [p.name for p in outbox.iterdir()] == [new_file.name]
    rows = session.scalars(select(OutboxMessage).order_by(OutboxMessage.created_at)).all()
    assert [(r.status, r.to_address) for r in rows] == [
        ("failed", None),
        ("queued", "ada@example.org"),
    ]


def test_an_erasure_removes_the_eml_files_sent_to_the_person(
    session: Session, rules: Rules, tmp_path: Path
) -> None:
    subject_id = make_subscriber(session, rules, email="ada@example.org")
    for to in ("Ada <Ada@Example.org>", "grace@example.org"):
        message = EmailMessage()
        message["To"] = to
        message["Message-ID"] = f"<{to.count('@')}{len(to)}@example.org>"
        message.set_content("Hi.")
        mail.FileTransport(tmp_path).send(message)
    assert len(list(tmp_path.glob("*.eml"))) == 2
    subjects.erase(session, rules, subject_id, make_act(), mail_files=tmp_path)
    [kept] = tmp_path.glob("*.eml")
    assert "grace@example.org" in kept.read_text()


def test_the_webhook_delivery_log_forgets_delivered_changes_after_its_period(
    session: Session,
) -> None:
    """The feed keeps every change; the log of what was delivered keeps `webhook_log`. What is
    still pending or failed stays whatever its age: it is work or a failure to look into."""
    session.add(
        Webhook(
            id="hook",
            url="https://receiver.example/hook",
            events="consent.changed",
            secret="whsec_x",
            created_at=T0,
            created_by="client:test",
        )
    )
    for n, (status, days) in enumerate(
        [("delivered", 0), ("delivered", 25), ("pending", 0), ("failed", 0)], start=1
    ):
        at = T0 + timedelta(days=days)
        session.add(
            WebhookDelivery(
                id=f"msg_{n}",
                webhook_id="hook",
                event_seq=n,
                event_type="consent.changed",
                status=status,
                attempts=1,
                created_at=at,
                next_attempt_at=at,
                last_attempt_at=at,
                delivered_at=at if status == "delivered" else None,
            )
        )
    session.commit()
    report = retention.run(session, PERIODS, now=T0 + timedelta(days=31))
    assert report.webhook_log_removed == 1
    kept = session.scalars(select(WebhookDelivery.id).order_by(WebhookDelivery.id)).all()
    assert kept == ["msg_2", "msg_3", "msg_4"]
