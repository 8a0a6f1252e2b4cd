"""Shared steps of the privacy page tests: a subscriber, their preference link, form tokens."""

from __future__ import annotations

import re
from dataclasses import replace

from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.config import Settings
from app.domain.identifiers import identifier
from app.domain.rules import Rules
from app.domain.vocabulary import IdentifierKind, Method
from app.models import OutboxMessage
from app.services.consent import notices
from app.services.delivery import mail
from app.services.delivery.mail import SmtpTransport
from app.services.optin import confirmation, subscriptions
from app.services.tokens import Purpose, Tokens
from tests.factories import make_act

NOTICE_VERSION = "2026-11-01"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
ACCESS_URL = re.compile(r"https?://\S+/access/[\w.\-]+")


def preference_token(app: Flask, subject_id: str) -> str:
    tokens: Tokens = app.extensions["tokens"]
    return tokens.make(Purpose.PREFERENCES, {"s": subject_id})


def csrf(html: str) -> str:
    found = CSRF.search(html)
    assert found, "the page has no CSRF field"
    return found.group(1)


def access_url_in_outbox(session: Session) -> str:
    session.rollback()  # end any earlier read: the app under test committed since
    body = session.scalars(
        select(OutboxMessage.body_text).where(OutboxMessage.template == "access_link")
    ).one()
    found = ACCESS_URL.search(body or "")
    assert found, body
    return found.group(0)


def deliver(session: Session, port: int) -> int:
    """Send what the outbox holds to the test SMTP server, as the mail worker would."""
    session.rollback()  # see what the app under test committed since the last read
    transport = SmtpTransport("127.0.0.1", port, timeout=5)
    return mail.deliver_due(session, transport, mail_from="cc@example.org").sent


def make_person(
    session: Session,
    rules: Rules,
    *,
    email: str = "ada@example.org",
    country: str | None = "DE",
    ip: str = "198.51.100.7",
) -> str:
    """A confirmed subscriber who saw the shipped consent wording, with a country on file.

    With country=None and a public ip, the country is estimated from the IP instead.
    """
    notices.publish_file(session, Settings.__dataclass_fields__["notices_path"].default)  # type: ignore[arg-type]
    act = replace(
        make_act(method=Method.FORM, notice_version=NOTICE_VERSION, ip=ip), country=country
    )
    requested = subscriptions.request(
        session,
        rules,
        subscriptions.OptIn(
            identifier(IdentifierKind.EMAIL, email),
            "email",
            ["newsletter", "offers"],
            country=country,
        ),
        act,
    )
    assert requested.request is not None
    confirmation.confirm_request(
        session,
        rules,
        requested.request.id,
        make_act(actor="subject", method=Method.DOUBLE_OPT_IN, user_agent="Mozilla/5.0 (phone)"),
    )
    return requested.subject_id
