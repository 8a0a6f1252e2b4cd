"""Double opt-in confirmation: the confirmation mail and its link, the confirming POST, a new link.

The link carries only the request id, signed; the request stores only the link's hash, so a
newer link replaces it. Confirming turns the request's pending events into grants, and is the
only way a pending email address becomes granted.
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

from app.domain.catalog import Catalog
from app.domain.consent import channel_topic, legal_basis, pair_topic
from app.domain.errors import ExpiredTokenError, InvalidTokenError, NotFoundError
from app.domain.rules import Rules
from app.domain.vocabulary import Action, Method, Status
from app.models import SubjectIdentifier, SubscriptionRequest, new_id, utcnow
from app.services.consent import ledger, subjects, suppression
from app.services.delivery import mail
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
    if found.state is State.PENDING:
        _grant(session, rules, found.request_id, act, now)
        found = Outcome(State.CONFIRMED, found.request_id, found.locale)
    session.commit()
    return found


def confirm_request(
    session: Session,
    rules: Rules,
    request_id: str,
    act: ledger.Act,
    *,
    now: datetime | None = None,
) -> SubscriptionRequest:
    """Confirm a request by its id (the demo data, tests); confirming twice changes nothing."""
    pending = _grant(session, rules, request_id, act, now or utcnow())
    session.commit()
    return pending


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
    if found.state is not State.ALREADY_CONFIRMED:
        ledger.lock(session)  # serialises with subscribe(), so the daily limit holds under load
        pending = session.get(SubscriptionRequest, found.request_id, populate_existing=True)
        address = session.get(SubjectIdentifier, pending.identifier_hmac) if pending else None
        if pending is None or address is None:
            raise InvalidTokenError("This confirmation link is no longer valid.")
        mail_link(session, rules, mailer, pending, address.value, now)
        found = Outcome(State.PENDING, pending.id, pending.locale)
    session.commit()
    return found


def ask(
    session: Session,
    rules: Rules,
    mailer: Mailer,
    address: SubjectIdentifier,
    channel: str,
    categories: Sequence[str],
    act: ledger.Act,
    *,
    now: datetime,
    is_mailed: bool = True,
) -> SubscriptionRequest | None:
    """A confirmation request for one held address, and its mail, in the caller's transaction.

    Confirming it confirms the address and grants `categories` on `channel`. None, and no
    request kept, when the address had a confirmation mail today. A number (`is_mailed`
    False) gets the request only: its confirmation comes from elsewhere.
    """
    pending = SubscriptionRequest(
        id=new_id(),
        subject_id=address.subject_id,
        identifier_hmac=address.hmac,
        channel=channel,
        categories=json.dumps(sorted(set(categories))),
        locale=act.locale,
        notice_version=act.notice_version,
        source=act.source,
        created_at=now,
        expires_at=now + mailer.tokens.ttl(Purpose.CONFIRM),
    )
    session.add(pending)
    if is_mailed and not mail_link(session, rules, mailer, pending, address.value, now):
        session.expunge(pending)
        return None
    return pending


def mail_link(
    session: Session,
    rules: Rules,
    mailer: Mailer,
    pending: SubscriptionRequest,
    address: str,
    now: datetime,
) -> bool:
    """Queue the confirmation mail in the caller's transaction, unless the address had one today.

    The mail carries a newly signed link, which replaces any earlier one. Returns whether a mail
    was queued.
    """
    if mailed_recently(session, pending.identifier_hmac, now):
        return False
    ttl = mailer.tokens.ttl(Purpose.CONFIRM)
    # The nonce makes each new link differ from the one it replaces, even within one second.
    token = mailer.tokens.make(Purpose.CONFIRM, {"r": pending.id, "n": secrets.token_hex(4)})
    link = f"{mailer.base_url}/confirm/{token}"
    message = mail.enqueue(
        session,
        _render(rules.catalog, mailer.templates, pending, link, ttl),
        to=address,
        mail_from=mailer.mail_from,
        subject_id=pending.subject_id,
        now=now,
    )
    pending.token_hash = token_hash(token)
    pending.expires_at = now + ttl
    pending.message_id = message.message_id
    pending.mailed_at = now
    return True


def _render(
    catalog: Catalog,
    templates: mail.MailTemplates,
    pending: SubscriptionRequest,
    link: str,
    ttl: timedelta,
) -> mail.Rendered:
    """The confirmation mail in the request's language, with only the catalog's own labels:
    nothing the requester typed is echoed."""
    locale = pending.locale
    return templates.render(
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
            "link": link,
            "valid_hours": int(ttl.total_seconds() // 3600),
        },
    )


def mailed_recently(session: Session, identifier_hmac: str, now: datetime) -> bool:
    count = session.scalar(
        select(func.count())
        .select_from(SubscriptionRequest)
        .where(
            SubscriptionRequest.identifier_hmac == identifier_hmac,
            SubscriptionRequest.mailed_at > now - MAIL_INTERVAL,
        )
    )
    return bool(count)


def _grant(
    session: Session, rules: Rules, request_id: str, act: ledger.Act, now: datetime
) -> SubscriptionRequest:
    """Turn a pending request into grants in the caller's transaction; once only."""
    head = ledger.lock(session)
    pending = session.get(SubscriptionRequest, request_id, populate_existing=True)
    if pending is None:
        raise NotFoundError("No such subscription request.")
    if pending.confirmed_at is not None:
        return pending
    subjects.get(session, pending.subject_id)
    current = ledger.standings(session, pending.subject_id)
    categories = json.loads(pending.categories)
    channel = current.get(channel_topic(pending.channel))
    # A request naming no category confirms an address (one added on the preference page): it
    # never grants again a channel the person withdrew.
    is_withdrawn = channel is not None and channel.status is Status.WITHDRAWN
    topics = [] if is_withdrawn and not categories else [channel_topic(pending.channel)]
    topics += [pair_topic(pending.channel, c) for c in categories]
    # What was granted on this channel while it awaited confirmation (by a PATCH or a page)
    # is confirmed with it: the address's confirmation is what it waited for.
    topics += [
        topic
        for topic, standing in current.items()
        if topic.channel == pending.channel
        and topic.category
        and standing.status is Status.PENDING
        and topic not in topics
    ]
    confirm_act = ledger.Act(
        actor="subject",
        method=Method.DOUBLE_OPT_IN,
        source=pending.source,
        capture_point=act.capture_point,
        locale=pending.locale,
        notice_version=pending.notice_version,
        notice_sha256=act.notice_sha256,
        ip=act.ip,
        user_agent=act.user_agent,
        evidence={"request_id": pending.id, **dict(act.evidence)},
    )
    evidence_hash = ledger.record_evidence(session, pending.subject_id, confirm_act, now)
    drafts = [
        ledger.Draft(
            Action.CONFIRM,
            subject_id=pending.subject_id,
            topic=topic,
            status=Status.GRANTED,
            legal_basis=legal_basis(rules.catalog, topic),
            details={"request_id": pending.id},
        )
        for topic in topics
        if (s := current.get(topic)) is None or s.status is not Status.GRANTED
    ]
    if suppression.lift(session, rules, pending.identifier_hmac, now=now):
        drafts.append(
            ledger.Draft(
                Action.SUPPRESSION_LIFTED,
                subject_id=pending.subject_id,
                details={"request_id": pending.id},
            )
        )
    if drafts:
        ledger.append(session, head, confirm_act, drafts, now=now, evidence_hash=evidence_hash)
    pending.confirmed_at = now
    pending.confirm_evidence_hash = evidence_hash
    address = session.get(SubjectIdentifier, pending.identifier_hmac)
    if address is not None and address.confirmed_at is None:
        address.confirmed_at = now  # this address's own confirmation
    return pending
