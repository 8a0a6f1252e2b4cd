"""Opt-outs that happened elsewhere: complaints, unsubscribes, STOP replies and bounces.

Another system (an ESP, an SMS provider, a CRM) reports them; each becomes a withdrawal in the
ledger with where it came from (`details`) and the provider's own evidence (an evidence row,
erased with the person). A complaint withdraws all email marketing of the address; a STOP
keyword all SMS marketing. START and UNSTOP give back exactly what a STOP took.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.domain.consent import Topic, channel_topic, pair_topic
from app.domain.identifiers import Identifier
from app.domain.rules import Rules
from app.domain.vocabulary import IdentifierKind, Method, Status
from app.models import ConsentEvent, ConsentState, SubjectIdentifier, utcnow
from app.services.consent import ledger, suppression
from app.services.consent.preferences import Change, plan_changes

REASONS = ("complaint", "unsubscribe", "stop_keyword", "bounce")
DEFAULT_CHANNEL = {"complaint": "email", "unsubscribe": "email", "stop_keyword": "sms"}


@dataclass(frozen=True)
class OptOut:
    ident: Identifier
    reason: str
    channel: str | None = None
    category: str | None = None
    reported_at: datetime | None = None  # when the provider saw it; the event keeps server time
    provider: str | None = None
    reference: str | None = None  # the provider's event or message id
    evidence: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Outcome:
    outcome: str  # withdrawn | granted | unchanged | unknown_subject | suppressed
    subject_id: str | None = None
    events: int = 0


def topic_of(rules: Rules, opt_out: OptOut) -> Topic:
    """What the report withdraws: a complaint or STOP the whole channel, else what it names."""
    channel = opt_out.channel or DEFAULT_CHANNEL.get(opt_out.reason)
    if channel is None:
        channel = "sms" if opt_out.ident.kind is IdentifierKind.PHONE else "email"
    if opt_out.reason == "complaint":
        channel = "email"
    rules.catalog.require_channel(channel)
    if opt_out.category and opt_out.reason not in ("complaint", "stop_keyword"):
        rules.catalog.require_pair(channel, opt_out.category)
        return pair_topic(channel, opt_out.category)
    return channel_topic(channel)


def _details(opt_out: OptOut) -> dict[str, Any]:
    details: dict[str, Any] = {"reason": opt_out.reason}
    if opt_out.provider:
        details["provider"] = opt_out.provider
    if opt_out.reference:
        details["reference"] = opt_out.reference
    if opt_out.reported_at:
        details["reported_at"] = opt_out.reported_at.isoformat()
    return details


def _subject_for(session: Session, rules: Rules, ident: Identifier) -> Outcome | str:
    keys = ident.keys(rules.identifier_keys)  # old keys of the ring still find a person
    subject_id = session.scalar(
        select(SubjectIdentifier.subject_id).where(SubjectIdentifier.hmac.in_(keys)).limit(1)
    )
    if subject_id is None:
        suppressed = suppression.is_suppressed(session, rules, ident=ident)
        return Outcome("suppressed" if suppressed else "unknown_subject")
    return str(subject_id)


def _apply(
    session: Session,
    rules: Rules,
    head: Any,
    subject_id: str,
    changes: Sequence[Change],
    act: ledger.Act,
    details: Mapping[str, Any],
    now: datetime,
) -> int:
    current = ledger.standings(session, subject_id)
    planned = plan_changes(rules, subject_id, changes, current)
    drafts = [replace(draft, details=details) for draft in planned]
    if drafts:
        ledger.append(session, head, act, drafts, now=now)
    return len(drafts)


def withdraw(
    session: Session,
    rules: Rules,
    head: Any,
    opt_outs: Sequence[OptOut],
    act: ledger.Act,
    now: datetime,
) -> list[Outcome]:
    """The withdrawals of `opt_outs`, in the caller's locked transaction."""
    topics = [topic_of(rules, o) for o in opt_outs]
    outcomes = []
    for opt_out, topic in zip(opt_outs, topics, strict=True):
        found = _subject_for(session, rules, opt_out.ident)
        if isinstance(found, Outcome):
            outcomes.append(found)
            continue
        method = Method.SMS_KEYWORD if opt_out.reason == "stop_keyword" else Method.PROVIDER_REPORT
        this_act = replace(
            act, method=method, evidence={**act.evidence, **opt_out.evidence} or act.evidence
        )
        written = _apply(
            session,
            rules,
            head,
            found,
            [Change(topic, Status.WITHDRAWN)],
            this_act,
            _details(opt_out),
            now,
        )
        outcomes.append(Outcome("withdrawn" if written else "unchanged", found, written))
    return outcomes


def record(
    session: Session,
    rules: Rules,
    opt_outs: Sequence[OptOut],
    act: ledger.Act,
    *,
    now: datetime | None = None,
) -> list[Outcome]:
    """Record every report or none; one already withdrawn writes nothing ("unchanged")."""
    for opt_out in opt_outs:
        topic_of(rules, opt_out)  # every report valid before anything is written
    head = ledger.lock(session)
    outcomes = withdraw(session, rules, head, opt_outs, act, now or utcnow())
    session.commit()
    return outcomes


def regrant(
    session: Session,
    rules: Rules,
    head: Any,
    ident: Identifier,
    act: ledger.Act,
    *,
    keyword: str,
    now: datetime,
) -> Outcome:
    """START / UNSTOP: grant again what a STOP keyword withdrew, recorded as sms_keyword, in
    the caller's locked transaction."""
    found = _subject_for(session, rules, ident)
    if isinstance(found, Outcome):
        return found
    stopped = session.execute(
        select(ConsentState.channel, ConsentState.category, ConsentState.purpose)
        .join(ConsentEvent, ConsentEvent.seq == ConsentState.event_seq)
        .where(
            ConsentState.subject_id == found,
            ConsentState.status == str(Status.WITHDRAWN),
            ConsentEvent.method == str(Method.SMS_KEYWORD),
        )
    ).all()
    changes = [Change(Topic(*row), Status.GRANTED) for row in stopped]
    written = _apply(
        session,
        rules,
        head,
        found,
        changes,
        replace(act, method=Method.SMS_KEYWORD),
        {"keyword": keyword},
        now,
    )
    return Outcome("granted" if written else "unchanged", found, written)
