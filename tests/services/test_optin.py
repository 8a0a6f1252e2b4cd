"""Double opt-in without HTTP: one transaction, one mail a day, links that expire and renew."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.config import PACKAGE_DATA
from app.domain.errors import InvalidTokenError
from app.domain.identifiers import identifier
from app.domain.rules import Rules
from app.domain.vocabulary import IdentifierKind, Status
from app.models import ConsentEvent, OutboxMessage, SubscriptionRequest, utcnow
from app.services import tokens
from app.services.consent import ledger, notices
from app.services.delivery import mail
from app.services.optin import confirmation, subscriptions
from tests.concurrency import at_once
from tests.factories import make_act
from tests.smtp import Inbox, confirm_link, free_port, smtp_server, text_of

TEMPLATES = Path(__file__).parent.parent.parent / "templates" / "mail"
TTL = {purpose: timedelta(hours=72) for purpose in tokens.Purpose}


def make_mailer(ttl: timedelta = timedelta(hours=72)) -> confirmation.Mailer:
    return confirmation.Mailer(
        mail.MailTemplates(TEMPLATES),
        tokens.Tokens("test-secret", {**TTL, tokens.Purpose.CONFIRM: ttl}),
        "http://127.0.0.1:5000",
        "Example Shop <no-reply@example.org>",
    )


@pytest.fixture
def published(session: Session) -> Session:
    notices.publish_file(session, PACKAGE_DATA / "notices.yaml")
    return session


def sign_up(
    session: Session,
    rules: Rules,
    mailer: confirmation.Mailer,
    *,
    email: str = "ada@example.org",
    locale: str = "en",
    categories: tuple[str, ...] = ("newsletter", "offers"),
    **kwargs: object,
) -> subscriptions.Signup:
    return subscriptions.subscribe(
        session,
        rules,
        mailer,
        subscriptions.OptIn(identifier(IdentifierKind.EMAIL, email), "email", list(categories)),
        make_act(locale=locale, notice_version="2026-11-01"),
        **kwargs,  # type: ignore[arg-type]
    )


def outbox(session: Session) -> list[OutboxMessage]:
    return list(session.scalars(select(OutboxMessage).order_by(OutboxMessage.created_at)))


def token_in(message: OutboxMessage) -> str:
    return confirm_link(message.body_text or "").rpartition("/")[2]


def test_the_request_and_its_mail_are_written_together(published: Session, rules: Rules) -> None:
    signup = sign_up(published, rules, make_mailer())
    [message] = outbox(published)
    pending = published.scalars(select(SubscriptionRequest)).one()
    assert signup.status is Status.PENDING
    assert signup.is_mailed
    assert pending.message_id == message.message_id
    assert pending.mailed_at == message.created_at
    assert message.status == "queued"
    assert message.to_address == "ada@example.org"
    assert pending.token_hash == tokens.token_hash(token_in(message))
    assert token_in(message) not in json.dumps(pending.__dict__, default=str)


def test_the_mail_names_sender_request_and_expiry_and_echoes_nothing(
    published: Session, rules: Rules
) -> None:
    sign_up(published, rules, make_mailer(), email="evil@example.org")
    [message] = outbox(published)
    body = message.body_text or ""
    assert "Example Shop GmbH" in message.mail_subject
    assert "Newsletter" in body
    assert "Offers and discounts" in body or "Offers" in body
    assert "72 hours" in body
    assert "If it was not you" in body
    assert "evil" not in body
    assert "evil" not in (message.body_html or "")
    assert message.template == "confirm"
    assert len(message.template_sha256) == 64


def test_every_language_has_its_own_subject_and_body(published: Session, rules: Rules) -> None:
    mailer = make_mailer()
    for number, locale in enumerate(("en", "es", "it", "de")):
        sign_up(published, rules, mailer, email=f"p{number}@example.org", locale=locale)
    messages = outbox(published)
    assert [m.locale for m in messages] == ["en", "es", "it", "de"]
    assert len({m.mail_subject for m in messages}) == 4
    assert len({(m.body_text or "").split("http")[0] for m in messages}) == 4
    assert len({m.template_sha256 for m in messages}) == 4
    assert "Boletín de noticias" in (messages[1].body_text or "")
    assert "Bitte bestätigen" in messages[3].mail_subject


def test_one_confirmation_mail_per_address_per_day(published: Session, rules: Rules) -> None:
    mailer = make_mailer()
    start = utcnow() - timedelta(hours=30)
    first = sign_up(published, rules, mailer, now=start)
    repeats = [
        sign_up(published, rules, mailer, email=" ADA@example.org ", now=start + timedelta(hours=h))
        for h in (1, 5, 23)
    ]
    later = sign_up(published, rules, mailer, now=start + timedelta(hours=25))
    assert first.is_mailed
    assert [r.is_mailed for r in repeats] == [False, False, False]
    assert later.is_mailed
    assert len(outbox(published)) == 2


def test_confirming_grants_once_and_twice_is_harmless(published: Session, rules: Rules) -> None:
    mailer = make_mailer()
    signup = sign_up(published, rules, mailer)
    token = token_in(outbox(published)[0])
    act = make_act(actor="subject", ip="203.0.113.9", user_agent="Mozilla/5.0 test")
    assert confirmation.inspect(published, mailer.tokens, token).state is confirmation.State.PENDING
    first = confirmation.confirm(published, rules, mailer.tokens, token, act)
    events_after_first = published.scalar(select(func.count()).select_from(ConsentEvent))
    second = confirmation.confirm(published, rules, mailer.tokens, token, act)
    assert first.state is confirmation.State.CONFIRMED
    assert second.state is confirmation.State.ALREADY_CONFIRMED
    assert published.scalar(select(func.count()).select_from(ConsentEvent)) == (events_after_first)
    standings = ledger.standings(published, signup.subject_id)
    assert {s.status for s in standings.values()} == {Status.GRANTED}


def test_a_forged_or_foreign_link_is_refused(published: Session, rules: Rules) -> None:
    mailer = make_mailer()
    sign_up(published, rules, mailer)
    token = token_in(outbox(published)[0])
    foreign = tokens.Tokens("another-secret", TTL).make(tokens.Purpose.CONFIRM, {"r": "x"})
    for bad in (
        token[:-4] + "AAAA",
        "garbage",
        foreign,
        mailer.tokens.make(tokens.Purpose.CONFIRM, {"r": "nope"}),
    ):
        with pytest.raises(InvalidTokenError):
            confirmation.inspect(published, mailer.tokens, bad)


def test_an_expired_link_confirms_nothing_and_a_new_one_replaces_it(
    published: Session, rules: Rules
) -> None:
    expired, fresh = make_mailer(ttl=timedelta(seconds=-1)), make_mailer()
    signup = sign_up(published, rules, expired, now=utcnow() - timedelta(hours=25))
    old = token_in(outbox(published)[0])
    act = make_act(actor="subject")
    assert confirmation.confirm(published, rules, expired.tokens, old, act).state is (
        confirmation.State.EXPIRED
    )
    # Signature still fresh by this signer's clock, but the stored expiry has passed.
    assert confirmation.inspect(published, fresh.tokens, old).state is confirmation.State.EXPIRED
    assert confirmation.renew(published, rules, fresh, old).state is confirmation.State.PENDING
    assert len(outbox(published)) == 2
    with pytest.raises(InvalidTokenError):
        confirmation.inspect(published, fresh.tokens, old)
    new_token = token_in(outbox(published)[1])
    confirmed = confirmation.confirm(published, rules, fresh.tokens, new_token, act)
    assert confirmed.state is confirmation.State.CONFIRMED
    standings = ledger.standings(published, signup.subject_id)
    assert {s.status for s in standings.values()} == {Status.GRANTED}
    again = confirmation.renew(published, rules, fresh, new_token)
    assert again.state is confirmation.State.ALREADY_CONFIRMED


def test_a_new_link_respects_the_daily_limit(published: Session, rules: Rules) -> None:
    mailer = make_mailer(ttl=timedelta(seconds=-1))
    sign_up(published, rules, mailer)
    token = token_in(outbox(published)[0])
    confirmation.renew(published, rules, mailer, token)
    confirmation.renew(published, rules, mailer, token)
    assert len(outbox(published)) == 1


def test_mail_queued_while_smtp_is_down_goes_out_when_it_is_back(
    published: Session, rules: Rules
) -> None:
    sign_up(published, rules, make_mailer())
    port = free_port()
    transport = mail.SmtpTransport("127.0.0.1", port, timeout=5)
    down = mail.deliver_due(published, transport, mail_from="shop@example.org")
    [queued] = outbox(published)
    assert (down.sent, down.deferred) == (0, 1)
    assert queued.status == "queued"
    assert queued.last_error
    token = token_in(queued)  # read while the outbox still holds the text
    with smtp_server(Inbox(), port) as (inbox, _):
        later = queued.next_attempt_at + timedelta(seconds=1)
        up = mail.deliver_due(published, transport, mail_from="shop@example.org", now=later)
    published.refresh(queued)
    assert (up.sent, up.deferred) == (1, 0)
    assert queued.status == "sent"
    assert queued.sent_at == later
    [received] = inbox.messages
    assert received["Message-ID"] == queued.message_id
    assert confirm_link(text_of(received)).endswith(token)
    assert (queued.to_address, queued.body_text) == (None, None)  # sent: proof kept, copy gone


def test_posts_at_the_same_moment_still_send_one_mail(published: Session, rules: Rules) -> None:
    engine = published.get_bind()
    mailer = make_mailer()

    def post() -> None:
        with Session(engine) as own:
            sign_up(own, rules, mailer, email="Same@Example.org")

    at_once(*[post] * 6)  # raises what any post raised
    assert len(outbox(published)) == 1
