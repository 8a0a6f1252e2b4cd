"""Changing a subject's choices: per pair, per whole channel, per purpose, or all marketing."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from app.domain.consent import (
    ALL_MARKETING,
    PreferencesView,
    Standing,
    Topic,
    channel_topic,
    legal_basis,
)
from app.domain.errors import UnknownTopicError
from app.domain.rules import Rules
from app.domain.vocabulary import Action, LegalBasis, Status
from app.models import Subject, utcnow
from app.services.consent import ledger, subjects, suppression

ACTION_BY_STATUS = {
    Status.GRANTED: Action.GRANT,
    Status.PENDING: Action.REQUEST,
    Status.WITHDRAWN: Action.WITHDRAW,
}


@dataclass(frozen=True)
class Change:
    topic: Topic
    status: Status


def view(
    session: Session, rules: Rules, subject_id: str, *, now: datetime | None = None
) -> PreferencesView:
    subjects.get(session, subject_id)
    return ledger.current_view(session, rules, subject_id, now=now or utcnow())


def validate_changes(rules: Rules, changes: Sequence[Change]) -> None:
    """Every topic must be in the catalog and be something consent governs."""
    for index, change in enumerate(changes):
        topic = change.topic
        if change.status is Status.PENDING:
            raise UnknownTopicError(
                "Only granted or withdrawn can be set.",
                {f"changes.{index}.status": ["Must be granted or withdrawn."]},
            )
        if topic.purpose:
            rules.catalog.require_purpose(topic.purpose)
        elif topic.category:
            category = rules.catalog.require_pair(topic.channel, topic.category)
            if category.is_transactional:
                message = f"{topic.category!r} is transactional: no consent governs it."
                raise UnknownTopicError(message, {f"changes.{index}.category": [message]})
        else:
            rules.catalog.require_channel(topic.channel)


def change(
    session: Session,
    rules: Rules,
    subject_id: str,
    changes: Sequence[Change],
    act: ledger.Act,
    *,
    now: datetime | None = None,
) -> PreferencesView:
    """Record every change or none; a change to what already stands writes nothing."""
    validate_changes(rules, changes)
    now = now or utcnow()
    act = ledger.cited(session, act)
    # Read before the lock: the answer's flag, not a decision of the write.
    is_suppressed = suppression.is_suppressed(session, rules, subject_id=subject_id)
    head, subject, current = subjects.locked_standings(session, subject_id)
    awaiting = awaiting_confirmation(session, rules, subject, current)
    drafts = plan_changes(rules, subject_id, changes, current, awaiting=awaiting)
    events = ledger.append(session, head, act, drafts, now=now, last=True) if drafts else []
    session.commit()
    # The answer is built from what was read and written, after the lock is released.
    return ledger.view_of(rules, ledger.after(current, events), now, is_suppressed=is_suppressed)


def awaiting_confirmation(
    session: Session,
    rules: Rules,
    subject: Subject | subjects.Held,
    current: Mapping[Topic, Standing],
) -> frozenset[str]:
    """The channels whose grants stay pending until the address's own confirmation.

    A channel awaiting its double opt-in, or one double opt-in governs (by the subject's
    country) that was never granted: a client or a page cannot stand in for the mailbox.
    """
    awaiting = set()
    for channel in rules.catalog.channels:
        standing = current.get(channel_topic(channel))
        status = standing.status if standing is not None else None
        if status is Status.PENDING or (
            status is not Status.GRANTED
            and rules.needs_double_opt_in(channel, subject.country)
            and not ledger.has_been_granted(session, subject.id, channel_topic(channel))
        ):
            awaiting.add(channel)
    return frozenset(awaiting)


def plan_changes(
    rules: Rules,
    subject_id: str,
    changes: Sequence[Change],
    current: Mapping[Topic, Standing],
    *,
    awaiting: Collection[str] = frozenset(),
) -> list[ledger.Draft]:
    """The events that make `changes` true, one per topic, skipping what already stands.

    Granting a category on a channel that was never opted into, or was withdrawn, is an
    explicit act on that channel too, so it also grants the channel. On a channel in
    `awaiting` a grant is recorded as a pending request: only the confirmation grants it.
    """
    drafts: list[ledger.Draft] = []
    planned: dict[Topic, Status] = {t: s.status for t, s in current.items()}
    global_withdrawal = current.get(ALL_MARKETING)

    def add(topic: Topic, status: Status) -> None:
        if status is Status.GRANTED and not topic.purpose and topic.channel in awaiting:
            status = Status.PENDING
        standing = current.get(topic)
        lifted_by_grant = (
            status is Status.GRANTED
            and topic.category
            and global_withdrawal is not None
            and global_withdrawal.status is Status.WITHDRAWN
            and (standing is None or standing.seq < global_withdrawal.seq)
        )
        if planned.get(topic) is status and not lifted_by_grant:
            return
        planned[topic] = status
        drafts.append(
            ledger.Draft(
                ACTION_BY_STATUS[status],
                subject_id=subject_id,
                topic=topic,
                status=status,
                legal_basis=legal_basis(rules.catalog, topic),
            )
        )

    for item in changes:
        topic = item.topic
        if item.status is Status.GRANTED and topic.category:
            channel = channel_topic(topic.channel)
            if planned.get(channel) in (None, Status.WITHDRAWN):
                add(channel, Status.GRANTED)
        add(topic, item.status)
    return drafts


def unsubscribe_all(
    session: Session,
    rules: Rules,
    subject_id: str,
    act: ledger.Act,
    *,
    details: Mapping[str, str] | None = None,
    now: datetime | None = None,
) -> PreferencesView:
    """Withdraw all marketing at once. Idempotent: nothing new if nothing was granted since."""
    now = now or utcnow()
    is_suppressed = suppression.is_suppressed(session, rules, subject_id=subject_id)
    standings = withdraw_all(session, subject_id, act, details=details, now=now)
    session.commit()
    return ledger.view_of(rules, standings, now, is_suppressed=is_suppressed)


def withdraw_all(
    session: Session,
    subject_id: str,
    act: ledger.Act,
    *,
    details: Mapping[str, str] | None = None,
    now: datetime,
) -> dict[Topic, Standing]:
    """The unsubscribe-all event, in the caller's transaction (which it locks first); the
    standings after it."""
    head = ledger.lock(session)
    act = ledger.cited(session, act)
    _, current = subjects.standings(session, subject_id)
    last = current.get(ALL_MARKETING)
    granted_since = any(
        s.status is not Status.WITHDRAWN and (last is None or s.seq > last.seq)
        for t, s in current.items()
        if not t.purpose and not t.is_all_marketing
    )
    if last is None or last.status is not Status.WITHDRAWN or granted_since:
        events = ledger.append(
            session,
            head,
            act,
            [
                ledger.Draft(
                    Action.UNSUBSCRIBE_ALL,
                    subject_id=subject_id,
                    topic=ALL_MARKETING,
                    status=Status.WITHDRAWN,
                    legal_basis=LegalBasis.CONSENT,
                    details=details,
                )
            ],
            now=now,
        )
        return ledger.after(current, events)
    return current
