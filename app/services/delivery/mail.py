"""Mail through an outbox: written in the caller's transaction, delivered later, never lost.

A message is rendered from per-locale Jinja2 templates (templates/mail/NAME.LOCALE.txt and
.html, the first line of the .txt being "Subject: …"), stored in `outbox_messages` with the
template's version and SHA-256 (proof of what was sent), and delivered by `deliver_due`, which
retries with capped exponential back-off for as long as the mail server is away.
"""

from __future__ import annotations

import hashlib
import smtplib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from pathlib import Path
from typing import Any, Protocol

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from app.domain.catalog import DEFAULT_LOCALE, LOCALES
from app.models import OutboxMessage, utcnow

MAX_BACKOFF = timedelta(hours=1)


@dataclass(frozen=True)
class Rendered:
    template: str
    locale: str
    subject: str
    text: str
    html: str | None
    version: str  # the first 12 hex digits of the hash: short enough to print on evidence
    sha256: str


class MailTemplates:
    """Renders templates/mail/NAME.LOCALE.{txt,html}; falls back to English."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._env = Environment(
            loader=FileSystemLoader(str(directory)),
            autoescape=select_autoescape(["html"]),
            undefined=StrictUndefined,
            keep_trailing_newline=True,
        )

    def render(self, name: str, locale: str | None, context: Mapping[str, Any]) -> Rendered:
        chosen = locale if locale in LOCALES else DEFAULT_LOCALE
        if not (self.directory / f"{name}.{chosen}.txt").exists():
            chosen = DEFAULT_LOCALE
        sources = [(self.directory / f"{name}.{chosen}.{ext}") for ext in ("txt", "html")]
        digest = hashlib.sha256()
        for source in sources:
            if source.exists():
                digest.update(source.read_bytes())
        text = self._env.get_template(f"{name}.{chosen}.txt").render(**context)
        first, _, body = text.partition("\n")
        if not first.startswith("Subject:"):
            raise ValueError(f"mail template {name}.{chosen}.txt must start with 'Subject:'")
        html = (
            self._env.get_template(f"{name}.{chosen}.html").render(**context)
            if sources[1].exists()
            else None
        )
        sha = digest.hexdigest()
        return Rendered(
            name,
            chosen,
            first.removeprefix("Subject:").strip(),
            body.lstrip("\n"),
            html,
            sha[:12],
            sha,
        )


def enqueue(
    session: Session,
    rendered: Rendered,
    *,
    to: str,
    mail_from: str,
    subject_id: str | None,
    now: datetime | None = None,
) -> OutboxMessage:
    """Queue a message in the caller's transaction (no commit here): it goes out with the data."""
    now = now or utcnow()
    domain = parseaddr(mail_from)[1].rpartition("@")[2] or "localhost"
    message = OutboxMessage(
        id=str(uuid.uuid4()),
        subject_id=subject_id,
        # Not email.utils.make_msgid: it draws from the global `random`, which anything may
        # seed (hypothesis does), and two mails in one 10 ms tick then share an id.
        message_id=f"<{uuid.uuid4().hex}@{domain}>",
        to_address=to,
        template=rendered.template,
        template_version=rendered.version,
        template_sha256=rendered.sha256,
        locale=rendered.locale,
        mail_subject=rendered.subject,
        body_text=rendered.text,
        body_html=rendered.html,
        created_at=now,
        status="queued",
        attempts=0,
        next_attempt_at=now,
    )
    session.add(message)
    return message


def sent_recently(session: Session, subject_id: str, template: str, *, since: datetime) -> bool:
    """Whether a `template` mail was queued for the subject after `since` (no mail bombing)."""
    return bool(
        session.scalar(
            select(
                exists().where(
                    OutboxMessage.subject_id == subject_id,
                    OutboxMessage.template == template,
                    OutboxMessage.created_at > since,
                )
            )
        )
    )


class Transport(Protocol):
    def send(self, message: EmailMessage) -> None: ...


class SmtpTransport:
    def __init__(
        self,
        host: str,
        port: int,
        *,
        username: str | None = None,
        password: str | None = None,
        starttls: bool = False,
        timeout: float = 10,
    ) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self.username, self.password, self.starttls = username, password, starttls

    def send(self, message: EmailMessage) -> None:
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
            if self.starttls:
                smtp.starttls()
            if self.username:
                smtp.login(self.username, self.password or "")
            smtp.send_message(message)


class FileTransport:
    """Development: each message becomes an .eml file in a folder."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def send(self, message: EmailMessage) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        name = str(message["Message-ID"]).strip("<>").replace("@", "_at_").replace("/", "_")
        (self.directory / f"{name}.eml").write_bytes(bytes(message))


def to_email(row: OutboxMessage, mail_from: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = mail_from
    message["To"] = row.to_address or ""
    message["Subject"] = row.mail_subject
    message["Message-ID"] = row.message_id
    message["Date"] = format_datetime(row.created_at)
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies to a confirmation
    message.set_content(row.body_text or "")
    if row.body_html:
        message.add_alternative(row.body_html, subtype="html")
    return message


@dataclass(frozen=True)
class Delivery:
    sent: int
    deferred: int


def deliver_due(
    session: Session,
    transport: Transport,
    *,
    mail_from: str,
    now: datetime | None = None,
    limit: int = 100,
) -> Delivery:
    """Send what is due, one message per transaction; on failure back off and keep it.

    Each message is locked (PostgreSQL: FOR UPDATE SKIP LOCKED) and its outcome committed before
    the next, so concurrent workers never send one twice and a crash never re-sends what went out.
    """
    now = now or utcnow()
    is_postgres = session.get_bind().dialect.name == "postgresql"
    sent = deferred = 0
    for _ in range(limit):
        query = (
            select(OutboxMessage)
            .where(OutboxMessage.status == "queued", OutboxMessage.next_attempt_at <= now)
            .order_by(OutboxMessage.next_attempt_at)
            .limit(1)
        )
        if is_postgres:
            query = query.with_for_update(skip_locked=True)
        row = session.scalars(query).first()
        if row is None:
            break
        row.attempts += 1
        try:
            transport.send(to_email(row, mail_from))
        except (OSError, smtplib.SMTPException) as error:
            row.last_error = f"{type(error).__name__}: {error}"[:500]
            row.next_attempt_at = now + backoff(row.attempts)
            deferred += 1
        else:
            row.status, row.sent_at, row.last_error = "sent", now, None
            # Sent mail keeps its proof (Message-ID, template and hash, time), not a copy of
            # the address and text: an erased person's farewell mail must not keep them.
            row.to_address = row.body_text = row.body_html = None
            sent += 1
        session.commit()
    session.commit()
    return Delivery(sent, deferred)


def backoff(attempts: int) -> timedelta:
    return min(timedelta(seconds=30 * 2 ** min(attempts - 1, 10)), MAX_BACKOFF)


def transport_for(
    smtp_host: str | None,
    smtp_port: int,
    outbox_dir: Path,
    *,
    username: str | None = None,
    password: str | None = None,
    starttls: bool = False,
) -> Transport:
    if smtp_host:
        return SmtpTransport(
            smtp_host, smtp_port, username=username, password=password, starttls=starttls
        )
    return FileTransport(outbox_dir)
