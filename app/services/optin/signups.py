"""Double opt-in by email: the request and its confirmation mail, the confirming POST, a new link.

A request, its pending events and its confirmation mail are written in one transaction, so a
mail is never lost and never sent for a request that was not recorded. The link carries only
the request id, signed; the request stores only the link's hash, so a newer link replaces it.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.domain.errors import ExpiredTokenError, InvalidTokenError, UnknownTopicError
from app.domain.identifiers import Identifier
from app.domain.rules import Rules
from app.domain.vocabulary import IdentifierKind, Status
from app.models import (
    NoticeVersion,
    SubjectIdentifier,
    SubscriptionRequest,
    utcnow,
)
from app.services.consent import ledger, notices
from app.services.delivery import mail
from app.services.optin import subscriptions
from app.services.tokens import Purpose, Tokens, token_hash

TEMPLATE = "confirm"
# One confirmation mail per address per day, however often the form is sent: no mail bombing.
MAIL_INTERVAL = timedelta(hours=24)


@dataclass(frozen=True)
class Mailer:
    """What writing a confirmation mail needs, handed in by the caller."""

    templates: mail.MailTemplates
    tokens: Tokens
    base_url: str
    mail_from: str


@dataclass(frozen=True)
class Choice:
    name: str
    label: str
    description: str
    benefit: str = ""


@dataclass(frozen=True)
class Form:
    """What the public opt-in form shows: the notice beside the checkboxes, and the choices."""

    notice: NoticeVersion
    choices: list[Choice]


@dataclass(frozen=True)
class Signup:
    subject_id: str
    status: Status
    is_mailed: bool


class State(StrEnum):
    PENDING = "pending"
    CONFIRMED = "confirmed"
    ALREADY_CONFIRMED = "already_confirmed"
    EXPIRED = "expired"


@dataclass(frozen=True)
class Outcome:
    state: State
    request_id: str
    locale: str | None


def form(session: Session, rules: Rules, locale: str, channel: str = "email") -> Form:
    notice = notices.current(session, notices.CONSENT_NOTICE, locale)
    choices = [
        Choice(c.name, c.label.get(locale), c.description.get(locale), c.benefit.get(locale))
        for c in rules.catalog.categories.values()
        if not c.is_transactional and channel in c.channels
    ]
    return Form(notice, choices)


def subscribe(
    session: Session,
    rules: Rules,
    mailer: Mailer,
    ident: Identifier,
    channel: str,
    categories: Sequence[str],
    act: ledger.Act,
    *,
    country: str | None = None,
    is_notice_required: bool = False,
    now: datetime | None = None,
) -> Signup:
    """Record the request and, when double opt-in applies, queue its mail: one commit."""
    now = now or utcnow()
    if is_notice_required and notices.resolve(session, act.notice_version, act.locale) is None:
        message = "The consent notice shown is not a published version."
        raise UnknownTopicError(message, {"notice_version": [message]})
    requested = subscriptions.request(
        session,
        rules,
        ident,
        channel,
        categories,
        act,
        country=country,
        ttl=mailer.tokens.ttl(Purpose.CONFIRM),
        now=now,
        commit=False,
    )
    pending = requested.request
    is_mailed = (
        pending is not None
        and ident.kind is IdentifierKind.EMAIL
        and not _mailed_recently(session, pending.identifier_hmac, now)
    )
    if pending is not None and is_mailed:
        _queue_mail(session, rules, mailer, pending, ident.value, now)
    session.commit()
    return Signup(requested.subject_id, requested.status, is_mailed)


def inspect(
    session: Session, tokens: Tokens, token: str, *, now: datetime | None = None
) -> Outcome:
    """What a confirmation link stands for, changing nothing; InvalidTokenError if forged."""
    now = now or utcnow()
    try:
        payload = tokens.open(Purpose.CONFIRM, token).payload
        is_expired = False
    except ExpiredTokenError:
        payload = tokens.open_expired(Purpose.CONFIRM, token) or {}
        is_expired = True
    pending = session.get(SubscriptionRequest, str(payload.get("r", "")))
    if pending is None or pending.token_hash != token_hash(token):
        raise InvalidTokenError("This confirmation link is not valid, or a newer one replaced it.")
    if pending.confirmed_at is not None:
        state = State.ALREADY_CONFIRMED
    elif is_expired or pending.expires_at <= now:
        state = State.EXPIRED
    else:
        state = State.PENDING
    return Outcome(state, pending.id, pending.locale)


def confirm(
    session: Session,
    rules: Rules,
    tokens: Tokens,
    token: str,
    act: ledger.Act,
    *,
    now: datetime | None = None,
) -> Outcome:
    """The POST behind a confirmation link: grants once; again, or too late, changes nothing."""
    now = now or utcnow()
    found = inspect(session, tokens, token, now=now)
    if found.state is not State.PENDING:
        session.commit()
        return found
    subscriptions.confirm(session, rules, found.request_id, act, now=now)
    return Outcome(State.CONFIRMED, found.request_id, found.locale)


def renew(
    session: Session,
    rules: Rules,
    mailer: Mailer,
    token: str,
    *,
    now: datetime | None = None,
) -> Outcome:
    """A fresh link for a request whose link expired, within the one-mail-a-day rule."""
    now = now or utcnow()
    found = inspect(session, mailer.tokens, token, now=now)
    if found.state is State.ALREADY_CONFIRMED:
        session.commit()
        return found
    ledger.lock(session)  # serialises with subscribe(), so the daily limit holds under load
    pending = session.get(SubscriptionRequest, found.request_id, populate_existing=True)
    address = session.get(SubjectIdentifier, pending.identifier_hmac) if pending else None
    if pending is None or address is None:
        raise InvalidTokenError("This confirmation link is no longer valid.")
    if not _mailed_recently(session, pending.identifier_hmac, now):
        _queue_mail(session, rules, mailer, pending, address.value, now)
    session.commit()
    return Outcome(State.PENDING, pending.id, pending.locale)


def _mailed_recently(session: Session, identifier_hmac: str, now: datetime) -> bool:
    count = session.scalar(
        select(func.count())
        .select_from(SubscriptionRequest)
        .where(
            SubscriptionRequest.identifier_hmac == identifier_hmac,
            SubscriptionRequest.mailed_at > now - MAIL_INTERVAL,
        )
    )
    return bool(count)


def _queue_mail(
    session: Session,
    rules: Rules,
    mailer: Mailer,
    pending: SubscriptionRequest,
    address: str,
    now: datetime,
) -> None:
    """Sign a new link (replacing any earlier one) and queue the mail in this transaction."""
    catalog = rules.catalog
    locale = pending.locale
    ttl = mailer.tokens.ttl(Purpose.CONFIRM)
    # The nonce makes each new link differ from the one it replaces, even within one second.
    token = mailer.tokens.make(Purpose.CONFIRM, {"r": pending.id, "n": secrets.token_hex(4)})
    # Only the catalog's own labels go into the mail: nothing the requester typed is echoed.
    rendered = mailer.templates.render(
        TEMPLATE,
        locale,
        {
            "controller": {
                "name": catalog.controller.get("name", ""),
                "address": catalog.controller.get("address", ""),
                "contact": catalog.controller.get("contact", ""),
            },
            "channel": catalog.channels[pending.channel].label.get(locale),
            "categories": [
                catalog.categories[name].label.get(locale)
                for name in json.loads(pending.categories)
            ],
            "link": f"{mailer.base_url}/confirm/{token}",
            "valid_hours": int(ttl.total_seconds() // 3600),
        },
    )
    message = mail.enqueue(
        session,
        rendered,
        to=address,
        mail_from=mailer.mail_from,
        subject_id=pending.subject_id,
        now=now,
    )
    pending.token_hash = token_hash(token)
    pending.expires_at = now + ttl
    pending.message_id = message.message_id
    pending.mailed_at = now
