"""Re-permission: asking imported contacts whose proof was not enough to confirm themselves.

An operator runs it at a rate they choose (`consent-center repermission --per-minute N`);
each mail is logged as an event, and no address is mailed twice within the confirmation
window, however often the run is repeated.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, exists, select
from sqlalchemy.orm import Session

from app.domain.rules import Rules
from app.domain.vocabulary import Action, IdentifierKind, Method, Status
from app.models import (
    ChainHead,
    ConsentEvent,
    ConsentState,
    SubjectIdentifier,
    SubscriptionRequest,
    new_id,
    utcnow,
)
from app.services.consent import ledger
from app.services.optin import confirmation
from app.services.tokens import Purpose

ACT = ledger.Act(actor="system:repermission", method=Method.SYSTEM, source="repermission")


@dataclass(frozen=True)
class Run:
    mailed: int
    remaining: bool  # more addresses wait for a later run


def run(
    session: Session,
    rules: Rules,
    mailer: confirmation.Mailer,
    *,
    limit: int,
    now: datetime | None = None,
) -> Run:
    """Mail up to `limit` imported, unconfirmed addresses a confirmation link: one commit."""
    now = now or utcnow()
    window = mailer.tokens.ttl(Purpose.CONFIRM)
    head = ledger.lock(session)
    mailed_lately = exists().where(
        SubscriptionRequest.identifier_hmac == SubjectIdentifier.hmac,
        SubscriptionRequest.mailed_at > now - window,
    )
    pending_by_import = (
        select(SubjectIdentifier, ConsentState.category)
        .join(
            ConsentState,
            and_(
                ConsentState.subject_id == SubjectIdentifier.subject_id,
                ConsentState.channel == "email",
                ConsentState.purpose == "",
                ConsentState.status == str(Status.PENDING),
            ),
        )
        .join(ConsentEvent, ConsentEvent.id == ConsentState.event_id)
        .where(
            SubjectIdentifier.kind == str(IdentifierKind.EMAIL),
            SubjectIdentifier.confirmed_at.is_(None),
            ConsentEvent.method == str(Method.IMPORT),
            ~mailed_lately,
        )
        .order_by(SubjectIdentifier.created_at, SubjectIdentifier.hmac)
        .limit((limit + 1) * (len(rules.catalog.categories) + 1))  # rows per address, at most
    )
    wanted: dict[str, list[str]] = defaultdict(list)
    addresses: dict[str, SubjectIdentifier] = {}
    remaining = False
    for address, category in session.execute(pending_by_import).all():
        if address.hmac not in addresses and len(addresses) >= limit:
            remaining = True
            break
        addresses[address.hmac] = address
        if category:
            wanted[address.hmac].append(category)
    done = _mail(session, rules, mailer, head, addresses, wanted, now, remaining=remaining)
    session.commit()
    return done


def _mail(
    session: Session,
    rules: Rules,
    mailer: confirmation.Mailer,
    head: ChainHead,
    addresses: dict[str, SubjectIdentifier],
    wanted: dict[str, list[str]],
    now: datetime,
    *,
    remaining: bool,
) -> Run:
    drafts = []
    for key, address in addresses.items():
        pending = SubscriptionRequest(
            id=new_id(),
            subject_id=address.subject_id,
            identifier_hmac=key,
            channel="email",
            categories=json.dumps(sorted(set(wanted.get(key, [])))),
            source="repermission",
            created_at=now,
            expires_at=now + mailer.tokens.ttl(Purpose.CONFIRM),
        )
        session.add(pending)
        if not confirmation.mail_link(session, rules, mailer, pending, address.value, now):
            session.expunge(pending)  # mailed today by another path: nothing to log
            continue
        drafts.append(
            ledger.Draft(
                Action.REPERMISSION,
                subject_id=address.subject_id,
                details={"request_id": pending.id, "message_id": pending.message_id},
            )
        )
    if drafts:
        ledger.append(session, head, ACT, drafts, now=now)
    return Run(len(drafts), remaining)
