"""Webhook deliveries to a real receiver on 127.0.0.1: order, retries, signatures, SSRF."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session
from standardwebhooks import Webhook as Verifier

from app.domain.changes import RETRY_DELAYS
from app.domain.errors import InvalidWebhookError
from app.domain.rules import Rules
from app.domain.vocabulary import Action, Status
from app.models import ConsentEvent, Webhook, WebhookDelivery, utcnow
from app.services.audit import trail
from app.services.changes import feed
from app.services.consent import ledger
from app.services.delivery import webhooks
from tests.factories import change_newsletter, make_act, make_subscriber
from tests.receiver import Receiver, receiving

LEASE = timedelta(seconds=30)


def _register(session: Session, receiver: Receiver, **kwargs: object) -> webhooks.Registered:
    made = webhooks.register(
        session,
        receiver.url,
        ["consent.changed", "subject.erased"],
        actor="tests",
        allow_private=True,
        **kwargs,  # type: ignore[arg-type]
    )
    receiver.secret = made.secret
    return made


def _time_passes(session: Session) -> None:
    """Every retry falls due now (the receiver checks signature timestamps on the real clock)."""
    session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.status == "pending")
        .values(next_attempt_at=utcnow())
    )
    session.commit()


def test_a_receiver_that_fails_times_out_then_recovers_gets_every_change_in_order(
    session: Session, rules: Rules
) -> None:
    with receiving() as receiver:
        receiver.script = [500, "timeout", 503]
        receiver.hang_seconds = 1.5
        made = _register(session, receiver)
        make_subscriber(session, rules, email="one@example.org")
        make_subscriber(session, rules, email="two@example.org")
        sender = webhooks.Sender(allow_private=True, timeout=0.5)
        delays = []
        for _ in range(10):
            webhooks.deliver_due(session, sender, lease=LEASE)
            row = session.scalars(
                select(WebhookDelivery).order_by(WebhookDelivery.event_seq).limit(1)
            ).one()
            if row.status == "pending" and row.last_attempt_at:
                delays.append(row.next_attempt_at - row.last_attempt_at)
            _time_passes(session)
        sender.close()

    changes, _ = feed.page(session, 0, 100)
    delivered = receiver.delivered
    assert [r.body["data"]["cursor"] for r in delivered] == [c["cursor"] for c in changes]
    assert len({r.webhook_id for r in delivered}) == len(changes)
    assert all(r.verified for r in receiver.received)
    assert [r.answered for r in receiver.received[:4]] == [500, "timeout", 503, 200]
    assert delays[0] <= timedelta(seconds=30)
    assert delays == sorted(delays)
    assert delays[0] < delays[-1]
    assert delivered[0].body["type"] == "consent.changed"
    assert delivered[0].body["data"]["identifiers"]["email"] == ["one@example.org"]
    log = webhooks.deliveries(session, made.webhook.id, limit=100)
    assert {d.status for d in log} == {"delivered"}
    first = min(log, key=lambda d: d.event_seq)
    assert first.attempts == 4
    assert first.latency_ms is not None
    assert first.response_status == 200


def test_after_24_hours_of_failures_the_receiver_is_disabled_with_an_audited_event(
    session: Session, rules: Rules
) -> None:
    with receiving() as receiver:
        receiver.script = [500] * 100
        made = _register(session, receiver)
        make_subscriber(session, rules, confirmed=False)
        sender = webhooks.Sender(allow_private=True, timeout=1)
        start = now = utcnow()
        for _ in range(len(RETRY_DELAYS) + 1):
            webhooks.deliver_due(session, sender, lease=LEASE, now=now)
            row = session.scalars(
                select(WebhookDelivery).order_by(WebhookDelivery.event_seq).limit(1)
            ).one()
            now = row.next_attempt_at + timedelta(seconds=1)
        sender.close()

    webhook = session.get(Webhook, made.webhook.id)
    assert webhook is not None
    assert webhook.disabled_at is not None
    assert webhook.disabled_at - start >= timedelta(hours=24)
    assert row.status == "failed"
    assert row.attempts == len(RETRY_DELAYS) + 1
    audited = session.scalars(
        select(ConsentEvent).where(ConsentEvent.action == str(Action.WEBHOOK_DISABLED))
    ).one()
    assert made.webhook.id in (audited.details or "")
    assert trail.verify(session).is_ok
    # A disabled receiver is queued nothing more, and redelivering switches it back on.
    queued = len(webhooks.deliveries(session, made.webhook.id, limit=100))
    make_subscriber(session, rules, email="later@example.org", confirmed=False)
    assert len(webhooks.deliveries(session, made.webhook.id, limit=100)) == queued
    again = webhooks.redeliver(session, made.webhook.id, row.id)
    assert session.get(Webhook, made.webhook.id).disabled_at is None  # type: ignore[union-attr]
    assert (again.status, again.attempts) == ("pending", 0)


def test_a_change_rolled_back_queues_no_delivery(session: Session, rules: Rules) -> None:
    with receiving() as receiver:
        _register(session, receiver)
    head = ledger.lock(session)
    ledger.append(session, head, make_act(), [ledger.Draft(Action.ERASE, subject_id="x")])
    assert session.scalars(select(WebhookDelivery)).all()
    session.rollback()
    assert session.scalars(select(WebhookDelivery)).all() == []


def test_a_kept_alive_connection_the_receiver_closed_is_not_a_failed_attempt(
    session: Session, rules: Rules
) -> None:
    with receiving() as receiver:
        receiver.drop_kept_alive = True
        _register(session, receiver)
        make_subscriber(session, rules, confirmed=False)
        sender = webhooks.Sender(allow_private=True, timeout=1)
        webhooks.deliver_due(session, sender, lease=LEASE)
        sender.close()
    rows = session.scalars(select(WebhookDelivery)).all()
    assert len(rows) == 2
    assert {(row.status, row.attempts) for row in rows} == {("delivered", 1)}


def test_a_redirect_is_not_followed(session: Session, rules: Rules) -> None:
    with receiving() as receiver:
        receiver.script = [302]
        _register(session, receiver)
        make_subscriber(session, rules, confirmed=False)
        sender = webhooks.Sender(allow_private=True, timeout=1)
        webhooks.deliver_due(session, sender, lease=LEASE)
        sender.close()
    assert len(receiver.received) == 1
    row = session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.event_seq)).first()
    assert row is not None
    assert row.status == "pending"
    assert row.response_status == 302


def test_during_a_rotation_both_secrets_sign(session: Session, rules: Rules) -> None:
    with receiving() as receiver:
        made = _register(session, receiver)
        rotated = webhooks.rotate_secret(session, made.webhook.id, overlap=timedelta(hours=1))
        make_subscriber(session, rules, confirmed=False)
        sender = webhooks.Sender(allow_private=True, timeout=1)
        webhooks.deliver_due(session, sender, lease=LEASE)
        sender.close()
    first = receiver.received[0]
    raw = first.headers
    body = receiver.received[0].body
    assert len(raw["webhook-signature"].split(" ")) == 2
    for secret in (made.secret, rotated.secret):
        assert secret.startswith("whsec_")
        import json

        Verifier(secret).verify(json.dumps(body, separators=(",", ":")), raw)


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "localhost", "10.1.2.3", "169.254.169.254", "::1", "::ffff:127.0.0.1"]
)
def test_private_loopback_and_metadata_targets_are_refused_after_resolution(host: str) -> None:
    with pytest.raises(webhooks.TargetRefusedError):
        webhooks.resolve(host, 443, allow_private=False)
    assert webhooks.resolve(host, 443, allow_private=True)


def test_a_public_address_is_allowed() -> None:
    assert webhooks.resolve("93.184.216.34", 443, allow_private=False) == "93.184.216.34"


def test_a_name_resolving_to_loopback_is_refused_at_delivery(
    session: Session, rules: Rules
) -> None:
    with receiving() as receiver:
        made = _register(session, receiver)
        session.execute(
            update(Webhook)
            .where(Webhook.id == made.webhook.id)
            .values(url=receiver.url.replace("127.0.0.1", "localhost"))
        )
        session.commit()
        make_subscriber(session, rules, confirmed=False)
        sender = webhooks.Sender(allow_private=False, timeout=1)
        webhooks.deliver_due(session, sender, lease=LEASE)
        sender.close()
    assert receiver.received == []
    row = session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.event_seq)).first()
    assert row is not None
    assert "refused address (127.0.0.1)" in (row.last_error or "")


@pytest.mark.parametrize(
    "url",
    [
        "http://example.org/hooks",
        "https://127.0.0.1/hooks",
        "https://[::1]/hooks",
        "https://169.254.169.254/latest",
        "ftp://example.org/",
        "https://user:pw@example.org/",
    ],
)
def test_registration_refuses_what_would_never_be_delivered(session: Session, url: str) -> None:
    with pytest.raises(InvalidWebhookError):
        webhooks.register(session, url, ["consent.changed"], actor="t", allow_private=False)


def test_a_change_queues_one_delivery_per_receiver_that_wants_its_type(
    session: Session, rules: Rules
) -> None:
    """What `enqueue` adds (SQLite) and the pipelined INSERT … SELECT (PostgreSQL) alike:
    receivers in force that want the type, none other, ids `msg_` and 32 hex digits."""
    with receiving() as receiver:
        wants = _register(session, receiver).webhook.id
        other = webhooks.register(
            session, receiver.url, ["subject.erased"], actor="tests", allow_private=True
        ).webhook.id
        off = _register(session, receiver).webhook.id
    session.execute(update(Webhook).where(Webhook.id == off).values(disabled_at=utcnow()))
    session.commit()
    subject_id = make_subscriber(session, rules)
    change_newsletter(session, rules, subject_id, Status.WITHDRAWN)
    last = session.scalar(select(func.max(ConsentEvent.seq)))
    rows = session.scalars(select(WebhookDelivery).where(WebhookDelivery.event_seq == last)).all()
    assert [(r.webhook_id, r.event_type, r.status, r.attempts) for r in rows] == [
        (wants, "consent.changed", "pending", 0)
    ]
    assert re.fullmatch("msg_[0-9a-f]{32}", rows[0].id)
    assert rows[0].created_at == rows[0].next_attempt_at
    assert other not in {r.webhook_id for r in session.scalars(select(WebhookDelivery))}
