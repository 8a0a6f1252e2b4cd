"""Links for one message (preference page, RFC 8058 one-click unsubscribe) and what they do."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy.orm import Session

from app.domain.consent import Topic
from app.domain.errors import InvalidTokenError, SubjectSuppressedError, UnknownTopicError
from app.domain.rules import Rules
from app.domain.vocabulary import Method, Status
from app.models import utcnow
from app.services.consent import ledger, preferences, subjects, suppression
from app.services.tokens import Purpose, Tokens

ONE_CLICK_BODY = "List-Unsubscribe=One-Click"


@dataclass(frozen=True)
class MessageLinks:
    preference_url: str
    unsubscribe_url: str

    @property
    def headers(self) -> dict[str, str]:
        """RFC 8058 §3.1: one HTTPS URI, and the POST body a mailbox provider sends to it."""
        return {
            "List-Unsubscribe": f"<{self.unsubscribe_url}>",
            "List-Unsubscribe-Post": ONE_CLICK_BODY,
        }


@dataclass(frozen=True)
class UnsubscribeTarget:
    """What an unsubscribe token is about; `category` '' means the whole channel."""

    subject_id: str
    channel: str
    category: str
    message_id: str | None

    @property
    def topic(self) -> Topic:
        return Topic(self.channel, self.category)


@dataclass(frozen=True)
class UnsubscribePage:
    """What the unsubscribe page shows: the target, the way to the preference page, a locale."""

    target: UnsubscribeTarget
    preference_url: str
    locale: str | None


def preference_url(tokens: Tokens, base_url: str, subject_id: str) -> str:
    return f"{base_url}/p/{tokens.make(Purpose.PREFERENCES, {'s': subject_id})}"


def make_links(
    session: Session,
    rules: Rules,
    tokens: Tokens,
    base_url: str,
    subject_id: str,
    *,
    channel: str = "email",
    category: str | None = None,
    message_id: str | None = None,
) -> MessageLinks:
    """Signed links for one message to a subject; only marketing can be unsubscribed from.

    None for a suppressed subject: no message may go to them, so none needs links.
    """
    rules.catalog.require_channel(channel)
    if category:
        found = rules.catalog.require_pair(channel, category)
        if found.is_transactional:
            message = f"{category!r} is transactional: its messages carry no unsubscribe link."
            raise UnknownTopicError(message, {"category": [message]})
    subjects.get(session, subject_id)
    if suppression.is_suppressed(session, rules, subject_id=subject_id):
        raise SubjectSuppressedError(
            f"Subject {subject_id} is suppressed: an address of theirs was erased and has not"
            " been confirmed again since, so no message may be sent to them."
        )
    payload: dict[str, str] = {"s": subject_id, "c": channel}
    if category:
        payload["k"] = category
    if message_id:
        payload["m"] = message_id
    token = tokens.make(Purpose.UNSUBSCRIBE, payload)
    session.commit()  # ends the read transaction; nothing is written
    return MessageLinks(preference_url(tokens, base_url, subject_id), f"{base_url}/u/{token}")


def open_unsubscribe(rules: Rules, tokens: Tokens, token: str) -> UnsubscribeTarget:
    """The target of a genuine, unexpired token whose topic the catalog still has."""
    opened = tokens.open(Purpose.UNSUBSCRIBE, token)
    subject_id, payload = opened.subject_id, opened.payload
    channel, category, message_id = payload.get("c"), payload.get("k") or "", payload.get("m")
    if not isinstance(channel, str):
        raise InvalidTokenError("This link is not valid.")
    if not isinstance(category, str) or not (message_id is None or isinstance(message_id, str)):
        raise InvalidTokenError("This link is not valid.")
    try:
        if category:
            rules.catalog.require_pair(channel, category)
        else:
            rules.catalog.require_channel(channel)
    except UnknownTopicError as error:
        raise InvalidTokenError("This link is for a topic that no longer exists.") from error
    return UnsubscribeTarget(subject_id, channel, category, message_id)


def describe_unsubscribe(
    session: Session, rules: Rules, tokens: Tokens, base_url: str, token: str
) -> UnsubscribePage:
    """For the GET page, which changes nothing (mail scanners follow links)."""
    target = open_unsubscribe(rules, tokens, token)
    subject = subjects.get(session, target.subject_id)
    locale = subject.locale
    session.commit()
    return UnsubscribePage(target, preference_url(tokens, base_url, target.subject_id), locale)


def unsubscribe(
    session: Session,
    rules: Rules,
    tokens: Tokens,
    base_url: str,
    token: str,
    *,
    ip: str | None,
    user_agent: str | None,
    now: datetime | None = None,
) -> UnsubscribePage:
    """Withdraw what the token names, at once. Idempotent: a repeat writes nothing.

    The withdrawal event carries the message id, so the proof says which mail it came from.
    """
    target = open_unsubscribe(rules, tokens, token)
    now = now or utcnow()
    change = preferences.Change(target.topic, Status.WITHDRAWN)
    preferences.validate_changes(rules, [change])
    head = ledger.lock(session)
    locale = subjects.get(session, target.subject_id).locale
    current = ledger.standings(session, target.subject_id)
    details = {"message_id": target.message_id} if target.message_id else None
    drafts = [
        replace(draft, details=details)
        for draft in preferences.plan_changes(rules, target.subject_id, [change], current)
    ]
    if drafts:
        act = ledger.Act(
            actor="subject",
            method=Method.ONE_CLICK_UNSUBSCRIBE,
            source="list-unsubscribe",
            capture_point="unsubscribe_link",
            ip=ip,
            user_agent=user_agent,
        )
        ledger.append(session, head, act, drafts, now=now)
    session.commit()
    return UnsubscribePage(target, preference_url(tokens, base_url, target.subject_id), locale)
