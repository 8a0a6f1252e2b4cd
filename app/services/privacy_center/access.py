"""The privacy center's mailbox-proof session: ask for an access link, open, resume and end it.

A preference link (which may have been forwarded) only lets its holder ask for an access link
by mail. That link is short-lived and single-use, and opens a server-side session: the cookie
carries a random id, the table only its hash. Every use case of the center takes that id and
resumes the session with `resume`.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.domain.errors import DomainError, UsedTokenError
from app.domain.vocabulary import IdentifierKind
from app.models import AccessLog, AccessSession, Subject, SubjectIdentifier, UsedToken, utcnow
from app.services.consent import subjects
from app.services.delivery import mail
from app.services.privacy_center import rights
from app.services.tokens import Purpose, Tokens, spend, token_hash

ACCESS_MAIL = "access_link"
# One access mail per subject per this gap, however often the button is pressed.
MAIL_GAP = timedelta(minutes=5)


class AccessSessionError(DomainError):
    """No valid privacy session: none, unknown, ended, or idle for too long."""


class PrivacyPage(StrEnum):
    """A page of the privacy center, as the access log names it."""

    ACCESS_LINK = "access_link"
    OVERVIEW = "privacy"
    PRINT = "print"
    DOWNLOAD = "download"
    DELETE = "delete"


@dataclass(frozen=True)
class PrivacyVisit:
    """Where a privacy center page was opened from, for the access log."""

    ip: str | None
    user_agent: str | None


@dataclass(frozen=True)
class SessionVisit:
    """A page opened within a privacy session: the session id from its cookie, where the page
    was opened from, and how long the session may then stay idle."""

    session_id: str | None
    visit: PrivacyVisit
    idle: timedelta


def subject_for_preference_link(session: Session, tokens: Tokens, token: str) -> str:
    """The subject a preference link names; such a link never opens personal data by itself."""
    subject_id = tokens.open(Purpose.PREFERENCES, token).subject_id
    subjects.get(session, subject_id)
    return subject_id


@dataclass(frozen=True)
class AccessRequest:
    is_mailed: bool
    logged_due_at: datetime | None = None  # a logged rights request, for a person with no email


def request_access(
    session: Session,
    tokens: Tokens,
    templates: mail.MailTemplates,
    token: str,
    *,
    base_url: str,
    mail_from: str,
    locale: str | None,
    now: datetime | None = None,
) -> AccessRequest:
    """Mail a fresh access link to the subject's own address (not when one went out just now).

    The caller answers the same either way, so the page tells nobody whether a mail was sent.
    A person with no email address held (phone only) cannot prove a mailbox: their request is
    logged as a rights request for the DPO, who identifies them another way (GDPR 12(6)).
    """
    now = now or utcnow()
    subject_id = subject_for_preference_link(session, tokens, token)
    subject = subjects.get(session, subject_id)
    address = email_of(session, subject_id)
    if address is None:
        logged = rights.add(
            session,
            subject_id,
            "access",
            received_at=now,
            channel="web",
            note="No email address held: identify the person another way before answering.",
        )
        answer = AccessRequest(is_mailed=False, logged_due_at=logged.due_at)
    else:
        answer = AccessRequest(
            is_mailed=_mail_link(
                session,
                tokens,
                templates,
                subject,
                address,
                base_url=base_url,
                mail_from=mail_from,
                locale=locale,
                now=now,
            )
        )
    session.commit()
    return answer


def _mail_link(
    session: Session,
    tokens: Tokens,
    templates: mail.MailTemplates,
    subject: Subject,
    address: str,
    *,
    base_url: str,
    mail_from: str,
    locale: str | None,
    now: datetime,
) -> bool:
    """Queue the access link in the caller's transaction, unless one went out just now."""
    if mail.sent_recently(session, subject.id, ACCESS_MAIL, since=now - MAIL_GAP):
        return False
    access = tokens.make(Purpose.ACCESS, {"s": subject.id, "n": secrets.token_hex(8)})
    ttl_minutes = int(tokens.ttl(Purpose.ACCESS).total_seconds() // 60)
    rendered = templates.render(
        ACCESS_MAIL,
        locale or subject.locale,
        {"url": f"{base_url}/access/{access}", "minutes": ttl_minutes},
    )
    mail.enqueue(session, rendered, to=address, mail_from=mail_from, subject_id=subject.id, now=now)
    return True


def check_access_link(session: Session, tokens: Tokens, token: str) -> None:
    """Raise if the link is forged, expired, used, or its subject erased; change nothing."""
    subject_id = tokens.open(Purpose.ACCESS, token).subject_id
    if session.get(UsedToken, token_hash(token)) is not None:
        raise UsedTokenError("This link was already used.")
    subjects.get(session, subject_id)


@dataclass(frozen=True)
class OpenedSession:
    session_id: str
    subject_id: str
    expires_at: datetime


def open_session(
    session: Session,
    tokens: Tokens,
    token: str,
    visit: PrivacyVisit,
    *,
    idle: timedelta,
    now: datetime | None = None,
) -> OpenedSession:
    """Spend the access link and open a session; the access is answered as a rights request."""
    now = now or utcnow()
    opened = tokens.open(Purpose.ACCESS, token)
    subject_id = opened.subject_id
    subjects.get(session, subject_id)
    spend(session, token, Purpose.ACCESS, opened.issued_at + tokens.ttl(Purpose.ACCESS), now=now)
    session_id = secrets.token_urlsafe(32)
    session.add(
        AccessSession(
            id_hash=token_hash(session_id),
            subject_id=subject_id,
            created_at=now,
            last_seen_at=now,
            expires_at=now + idle,
        )
    )
    log_visit(session, subject_id, PrivacyPage.ACCESS_LINK, visit, now)
    rights.add(session, subject_id, "access", received_at=now, answered_at=now, channel="web")
    session.commit()
    return OpenedSession(session_id, subject_id, now + idle)


def end_session(session: Session, session_id: str | None) -> None:
    """Log out, or clear away a session `resume` found over: its row goes."""
    if session_id:
        row = session.get(AccessSession, token_hash(session_id))
        if row is not None:
            session.delete(row)
    session.commit()


def resume(
    session: Session, within: SessionVisit, *, now: datetime, touch: bool = True
) -> AccessSession:
    """The live session behind a cookie; each use pushes its idle deadline forward.

    A session idle for too long is deleted in the caller's transaction and AccessSessionError
    raised; the caller's use case has then failed, and the page that says so ends the session
    for good with `end_session`.
    """
    session_id = within.session_id
    row = session.get(AccessSession, token_hash(session_id)) if session_id else None
    if row is None:
        raise AccessSessionError("Your secure session has ended.")
    if row.expires_at <= now:
        session.delete(row)
        raise AccessSessionError("Your secure session has ended.")
    if touch:
        row.last_seen_at, row.expires_at = now, now + within.idle
    return row


def log_visit(
    session: Session, subject_id: str, page: PrivacyPage, visit: PrivacyVisit, now: datetime
) -> None:
    session.add(
        AccessLog(
            subject_id=subject_id,
            occurred_at=now,
            page=page.value,
            ip=visit.ip,
            user_agent=visit.user_agent,
        )
    )


def email_of(session: Session, subject_id: str) -> str | None:
    """The subject's first email address: where access links and the erasure notice go."""
    return session.scalar(
        select(SubjectIdentifier.value)
        .where(
            SubjectIdentifier.subject_id == subject_id,
            SubjectIdentifier.kind == str(IdentifierKind.EMAIL),
        )
        .order_by(SubjectIdentifier.created_at)
        .limit(1)
    )
