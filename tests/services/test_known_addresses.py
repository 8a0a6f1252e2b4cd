"""The public forms' use cases mail a known address as they mail an unknown one, without HTTP."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.domain.rules import Rules
from app.models import OutboxMessage
from app.services.consent import subjects
from app.services.optin import subscriptions
from app.services.preference_center import preference_page
from tests.factories import make_act, make_subscriber
from tests.services.test_optin import make_mailer, published, sign_up

__all__ = ["published"]  # the fixture, shared with the opt-in tests


def ask_for_link(session: Session, rules: Rules, email: str) -> None:
    mailer = make_mailer()
    preference_page.request_link(
        session,
        rules,
        mailer.tokens,
        mailer.templates,
        email,
        base_url=mailer.base_url,
        mail_from=mailer.mail_from,
        locale="en",
    )


def outbox(session: Session) -> list[tuple[str, str | None]]:
    rows = session.execute(select(OutboxMessage.template, OutboxMessage.to_address))
    return sorted((str(t), to) for t, to in rows.all())


def test_an_address_subscribed_to_all_it_asks_for_gets_its_preference_link(
    published: Session, rules: Rules
) -> None:
    make_subscriber(published, rules, email="ada@example.org", categories=["newsletter"])
    signup = sign_up(
        published, rules, make_mailer(), categories=("newsletter",), is_known_told=True
    )
    assert signup.is_mailed
    [body] = published.scalars(select(OutboxMessage.body_text)).all()
    assert "http://127.0.0.1:5000/p/" in (body or "")
    assert outbox(published) == [(subscriptions.ALREADY_MAIL, "ada@example.org")]
    # One mail a day from the form, however often it is sent.
    sign_up(published, rules, make_mailer(), categories=("newsletter",), is_known_told=True)
    assert len(outbox(published)) == 1


def test_the_api_tells_nobody_that_nothing_changed(published: Session, rules: Rules) -> None:
    make_subscriber(published, rules, email="ada@example.org", categories=["newsletter"])
    signup = sign_up(published, rules, make_mailer(), categories=("newsletter",))
    assert not signup.is_mailed
    assert outbox(published) == []


@pytest.mark.parametrize("email", ["known@example.org", "nobody@example.org"])
def test_the_link_request_mails_one_message_known_or_not(
    published: Session, rules: Rules, email: str
) -> None:
    make_subscriber(published, rules, email="known@example.org")
    ask_for_link(published, rules, email)
    template = "preference_link" if email.startswith("known") else "no_preferences"
    assert outbox(published) == [(template, email)]


def test_the_link_request_mails_nothing_to_a_suppressed_address(
    published: Session, rules: Rules
) -> None:
    gone = make_subscriber(published, rules, email="gone@example.org")
    subjects.erase(published, rules, gone, make_act())
    # Back by the erased address, not confirmed yet: known again, and still suppressed.
    make_subscriber(published, rules, email="gone@example.org", confirmed=False)
    for email in ("gone@example.org", "Gone+x@example.org"):
        ask_for_link(published, rules, email)
    assert [m for m in outbox(published) if m[1] and m[1].lower().startswith("gone")] == []
