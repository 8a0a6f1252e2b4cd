"""Test data made through the real services: keyword-only, with valid defaults."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.orm import Session

from app.domain.consent import Topic
from app.domain.identifiers import identifier
from app.domain.rules import Rules
from app.domain.vocabulary import IdentifierKind, Method, Status
from app.services.consent import preferences
from app.services.consent.ledger import Act
from app.services.optin import confirmation, subscriptions


def make_act(
    *,
    actor: str = "client:tests",
    method: Method = Method.API,
    source: str = "tests",
    ip: str | None = "198.51.100.7",
    user_agent: str | None = "pytest",
    locale: str | None = "en",
    notice_version: str | None = None,
) -> Act:
    return Act(
        actor=actor,
        method=method,
        source=source,
        ip=ip,
        user_agent=user_agent,
        locale=locale,
        notice_version=notice_version,
    )


def make_subscriber(
    session: Session,
    rules: Rules,
    *,
    email: str = "ada@example.org",
    categories: Sequence[str] = ("newsletter",),
    confirmed: bool = True,
    now: datetime | None = None,
) -> str:
    """A subject who asked for `categories` by email and, by default, confirmed."""
    requested = subscriptions.request(
        session,
        rules,
        identifier(IdentifierKind.EMAIL, email),
        "email",
        list(categories),
        make_act(),
        now=now,
    )
    if confirmed and requested.request is not None:
        confirmation.confirm_request(
            session, rules, requested.request.id, make_act(actor="subject"), now=now
        )
    return requested.subject_id


def withdraw_newsletter(session: Session, rules: Rules, subject_id: str) -> None:
    """The subject withdraws the email newsletter (through the API's use case)."""
    preferences.change(
        session,
        rules,
        subject_id,
        [preferences.Change(Topic("email", "newsletter"), Status.WITHDRAWN)],
        make_act(),
    )
