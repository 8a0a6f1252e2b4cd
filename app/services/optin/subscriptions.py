"""Opting in: a request records `pending` (double opt-in) or `granted` (single opt-in) events.

A request, its pending events and its confirmation mail are written in one transaction, so a
mail is never lost and never sent for a request that was not recorded. What happens when the
person confirms lives in `confirmation`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from app.domain.consent import Topic, channel_topic, legal_basis, pair_topic
from app.domain.errors import UnknownTopicError
from app.domain.identifiers import Identifier
from app.domain.rules import Rules
from app.domain.vocabulary import Action, IdentifierKind, Status
from app.models import NoticeVersion, SubjectIdentifier, SubscriptionRequest, new_id, utcnow
from app.services.consent import derived, ledger, notices, subjects, suppression
from app.services.delivery import mail
from app.services.identity import identifiers
from app.services.optin.confirmation import MAIL_INTERVAL, Mailer, mail_link, mailed_recently
from app.services.preference_center.message_links import preference_url
from app.services.tokens import Purpose

ALREADY_MAIL = "already_subscribed"


@dataclass(frozen=True)
class Requested:
    subject_id: str
    status: Status  # pending or granted
    request: SubscriptionRequest | None  # the double opt-in request, when one is pending
    is_new_subject: bool
    needs_confirmation: bool = False  # double opt-in applies (so no request: nothing was new)


@dataclass(frozen=True)
class OptIn:
    """What an opt-in asks for: the contact point it is for, the channel and categories, and
    the person's country and other identifiers (all landing on the one subject)."""

    ident: Identifier
    channel: str
    categories: Sequence[str]
    country: str | None = None
    also: Sequence[Identifier] = ()


@dataclass(frozen=True)
class Signup:
    subject_id: str
    status: Status
    is_mailed: bool


@dataclass(frozen=True)
class Choice:
    name: str
    label: str
    description: str
    benefit: str = ""  # what the person gets for it (the value exchange)


@dataclass(frozen=True)
class Form:
    """What the public opt-in form shows: the notice beside the checkboxes, and the choices."""

    notice: NoticeVersion
    choices: list[Choice]


def form(session: Session, rules: Rules, locale: str, channel: str = "email") -> Form:
    notice = notices.current(session, notices.CONSENT_NOTICE, locale)
    choices = [
        Choice(c.name, c.label.get(locale), c.description.get(locale), c.benefit.get(locale))
        for c in rules.catalog.categories.values()
        if not c.is_transactional and channel in c.channels
    ]
    return Form(notice, choices)


def validate_categories(rules: Rules, channel: str, categories: Sequence[str]) -> None:
    if not categories:
        raise UnknownTopicError(
            "Name at least one category.", {"categories": ["Must not be empty."]}
        )
    for category in categories:
        found = rules.catalog.require_pair(channel, category)
        if found.is_transactional:
            message = f"{category!r} is transactional: it needs no opt-in."
            raise UnknownTopicError(message, {"categories": [message]})


def subscribe(
    session: Session,
    rules: Rules,
    mailer: Mailer,
    opt_in: OptIn,
    act: ledger.Act,
    *,
    is_notice_required: bool = False,
    is_known_told: bool = False,
    now: datetime | None = None,
) -> Signup:
    """Record the request and, when double opt-in applies, queue its mail: one commit.

    `is_known_told` (the public form): an address already confirmed for all it asks is told so,
    with its preference link, so that one mail goes out whether or not the address was known.
    """
    now = now or utcnow()
    if is_notice_required and notices.resolve(session, act.notice_version, act.locale) is None:
        message = "The consent notice shown is not a published version."
        raise UnknownTopicError(message, {"notice_version": [message]})
    requested = _record(
        session, rules, opt_in, act, ttl=mailer.tokens.ttl(Purpose.CONFIRM), now=now
    )
    pending = requested.request
    ident = opt_in.ident
    is_mailed = (
        pending is not None
        and ident.kind is IdentifierKind.EMAIL
        and mail_link(session, rules, mailer, pending, ident.value, now)
    )
    if is_known_told and requested.needs_confirmation and pending is None:
        is_mailed = _tell_subscribed(session, rules, mailer, requested.subject_id, ident, now)
    session.commit()
    return Signup(requested.subject_id, requested.status, is_mailed)


def _tell_subscribed(
    session: Session,
    rules: Rules,
    mailer: Mailer,
    subject_id: str,
    ident: Identifier,
    now: datetime,
) -> bool:
    """Mail an already subscribed address its preference link: one mail a day from the form,
    this or a confirmation."""
    if (
        ident.kind is not IdentifierKind.EMAIL
        or mailed_recently(session, ident.key(rules.identifier_key), now)
        or mail.sent_recently(session, subject_id, ALREADY_MAIL, since=now - MAIL_INTERVAL)
    ):
        return False
    subject = subjects.get(session, subject_id)
    rendered = mailer.templates.render(
        ALREADY_MAIL,
        subject.locale,
        {
            "url": preference_url(mailer.tokens, mailer.base_url, subject_id),
            "days": mailer.tokens.ttl(Purpose.PREFERENCES).days,
            "sender": rules.catalog.controller.get("name", "Consent Center"),
        },
    )
    mail.enqueue(
        session,
        rendered,
        to=ident.value,
        mail_from=mailer.mail_from,
        subject_id=subject_id,
        now=now,
    )
    return True


def request(
    session: Session,
    rules: Rules,
    opt_in: OptIn,
    act: ledger.Act,
    *,
    ttl: timedelta = timedelta(hours=72),
    now: datetime | None = None,
) -> Requested:
    """Record an opt-in request and mail nothing (the demo data, tests)."""
    requested = _record(session, rules, opt_in, act, ttl=ttl, now=now or utcnow())
    session.commit()
    return requested


def _record(
    session: Session,
    rules: Rules,
    opt_in: OptIn,
    act: ledger.Act,
    *,
    ttl: timedelta,
    now: datetime,
) -> Requested:
    """Record an opt-in request: one event per (channel, category), never one bundled event.

    Double opt-in applies by policy, and always to a suppressed (erased) identifier: only a
    fresh confirmed opt-in lifts a suppression.
    """
    ident, channel, categories = opt_in.ident, opt_in.channel, opt_in.categories
    validate_categories(rules, channel, categories)
    head = ledger.lock(session)
    act = ledger.cited(session, act)
    subject, is_new = identifiers.resolve(
        session,
        rules,
        [ident, *opt_in.also],
        now=now,
        source=act.source,
        locale=act.locale,
        country=opt_in.country,
    )
    derived.note_country(session, subject, act.ip, act.capture_point, now)
    keys = ident.keys(rules.identifier_keys)
    key = keys[0]
    is_suppressed = suppression.is_suppressed(session, rules, ident=ident)
    if is_suppressed:
        subjects.carry_suppression(session, keys)  # so that confirming lifts it
    needs_confirmation = is_suppressed or rules.needs_double_opt_in(channel, opt_in.country)
    current = ledger.standings(session, subject.id)
    status = Status.PENDING if needs_confirmation else Status.GRANTED
    action = Action.REQUEST if needs_confirmation else Action.GRANT
    wanted: list[Topic] = []
    channel_standing = current.get(channel_topic(channel))
    if channel_standing is None or channel_standing.status is not Status.GRANTED:
        wanted.append(channel_topic(channel))
    wanted += [
        pair_topic(channel, c)
        for c in dict.fromkeys(categories)
        if (s := current.get(pair_topic(channel, c))) is None or s.status is not Status.GRANTED
    ]
    if is_suppressed and channel_topic(channel) not in wanted:
        wanted.insert(0, channel_topic(channel))
    drafts = [
        ledger.Draft(
            action,
            subject_id=subject.id,
            topic=topic,
            status=status,
            legal_basis=legal_basis(rules.catalog, topic),
        )
        for topic in wanted
        if current.get(topic) is None or current[topic].status is not status
    ]
    evidence_hash = ledger.record_evidence(session, subject.id, act, now)
    if drafts:
        ledger.append(session, head, act, drafts, now=now, evidence_hash=evidence_hash)
    # Each address has its own confirmation: a new address of a person who already opted in
    # is asked to confirm, though the person's choices stand.
    address = session.get(SubjectIdentifier, key)
    is_unconfirmed_address = address is not None and address.confirmed_at is None
    pending = None
    if needs_confirmation and (wanted or is_unconfirmed_address):
        pending = SubscriptionRequest(
            id=new_id(),
            subject_id=subject.id,
            identifier_hmac=key,
            channel=channel,
            categories=json.dumps(
                [t.category for t in wanted if t.category] or list(dict.fromkeys(categories))
            ),
            locale=act.locale,
            notice_version=act.notice_version,
            source=act.source,
            created_at=now,
            expires_at=now + ttl,
            request_evidence_hash=evidence_hash,
        )
        session.add(pending)
    overall = Status.PENDING if pending is not None else Status.GRANTED
    return Requested(subject.id, overall, pending, is_new, needs_confirmation)
