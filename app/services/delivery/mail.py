"""Mail through an outbox: written in the caller's transaction, delivered later, never lost.

A message is rendered from per-locale Jinja2 templates (templates/mail/NAME.LOCALE.txt and
.html, the first line of the .txt being "Subject: …"), stored in `outbox_messages` with the
template's version and SHA-256 (proof of what was sent), and delivered by `deliver_due`: each
message is claimed with a lease, sent with no transaction open, and its outcome recorded;
temporary failures retry with capped exponential back-off, permanent ones (5xx) are final.
"""

from __future__ import annotations

import hashlib
import smtplib
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from functools import partial
from pathlib import Path
from typing import Any, Protocol, TypeVar, cast

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from sqlalchemy import CursorResult, Engine, Table, and_, case, exists, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from app.domain.catalog import DEFAULT_LOCALE, LOCALES
from app.models import OutboxMessage, new_id, utcnow

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
        id=new_id(),
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
    """Development: each message becomes an .eml file in a folder.

    The file holds address and text, so it is personal data like the outbox row: its name
    starts with a digest of the recipient, so an erasure finds the person's files
    (`forget_files`), and retention removes files past their period (`remove_files`).
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def send(self, message: EmailMessage) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        name = str(message["Message-ID"]).strip("<>").replace("@", "_at_").replace("/", "_")
        recipient = _file_digest(parseaddr(str(message["To"] or ""))[1])
        (self.directory / f"{recipient}-{name}.eml").write_bytes(bytes(message))


def _file_digest(address: str) -> str:
    return hashlib.sha256(address.strip().lower().encode()).hexdigest()[:16]


def forget_files(directory: Path, addresses: Iterable[str]) -> int:
    """Remove the .eml files sent to these addresses (an erasure)."""
    removed = 0
    for address in addresses:
        for path in directory.glob(f"{_file_digest(address)}-*.eml"):
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def remove_files(directory: Path, *, before: datetime) -> int:
    """Remove the .eml files written before a moment (retention)."""
    removed = 0
    for path in directory.glob("*.eml") if directory.is_dir() else ():
        if path.stat().st_mtime < before.timestamp():
            path.unlink(missing_ok=True)
            removed += 1
    return removed


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
    failed: int = 0


# A claim holds a message for this long; a sender that dies holding it lets it go again
# once, after which the outcome counts as lost (LEASE_LOST) and the message is not retried.
LEASE = timedelta(minutes=5)
LEASE_LOST = "lease expired before the outcome was recorded"
_DUE_STATES = ("queued", "sending")
_OUTBOX = cast(Table, OutboxMessage.__table__)


def deliver_due(
    session: Session,
    transport: Transport,
    *,
    mail_from: str,
    now: datetime | None = None,
    limit: int = 100,
    lease: timedelta = LEASE,
    sleep: Callable[[float], None] = time.sleep,
) -> Delivery:
    """Send what is due, each message claimed, sent and recorded in transactions of its own.

    A claim is one UPDATE (a lease: status `sending` until `next_attempt_at`), so two workers
    never send one message, on SQLite as on PostgreSQL; no transaction is open while the mail
    server talks; the outcome is recorded with retries while the database is locked. A crash
    between sending and recording repeats a message at most once. A permanent refusal (5xx)
    marks it `failed` and clears address and text; a temporary one backs off.
    """
    # Each step is a transaction of its own on the engine, whatever the caller's session holds.
    engine = session.get_bind()
    sent = deferred = failed = 0
    failed += _retrying(sleep, partial(_give_up_lost, engine, now or utcnow()))
    for _ in range(limit):
        moment = now or utcnow()
        claimed = _retrying(sleep, partial(_claim, engine, moment, lease, mail_from))
        if claimed is None:
            break
        message_id, attempts, email = claimed
        try:
            transport.send(email)
        except (OSError, smtplib.SMTPException) as error:
            error_text = f"{type(error).__name__}: {error}"[:500]
            if is_permanent(error):
                values = {"status": "failed", "last_error": error_text, **_SCRUBBED}
                failed += 1
            else:
                values = {
                    "status": "queued",
                    "last_error": error_text,
                    "next_attempt_at": moment + backoff(attempts),
                }
                deferred += 1
        else:
            values = {"status": "sent", "sent_at": moment, "last_error": None, **_SCRUBBED}
            sent += 1
        _retrying(sleep, partial(_record, engine, message_id, values))
    session.commit()  # ends the caller's snapshot, so that its next read sees the outcomes
    return Delivery(sent, deferred, failed)


# Sent or failed mail keeps its proof (Message-ID, template and hash, time), not a copy of
# the address and text: an erased person's farewell mail must not keep them.
_SCRUBBED: dict[str, Any] = {"to_address": None, "body_text": None, "body_html": None}


def is_permanent(error: Exception) -> bool:
    """RFC 5321 §4.2.1: a 5yz reply will not succeed if repeated."""
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in error.recipients.values()]
        return bool(codes) and all(code >= 500 for code in codes)
    return isinstance(error, smtplib.SMTPResponseException) and error.smtp_code >= 500


def _claim(
    bind: Engine | Connection, now: datetime, lease: timedelta, mail_from: str
) -> tuple[str, int, EmailMessage] | None:
    table = _OUTBOX
    due = and_(table.c.status.in_(_DUE_STATES), table.c.next_attempt_at <= now)
    oldest = select(table.c.id).where(due).order_by(table.c.next_attempt_at).limit(1)
    if bind.dialect.name == "postgresql":
        oldest = oldest.with_for_update(skip_locked=True)
    with Session(bind) as own, own.begin():
        claimed = own.execute(
            update(table)
            .where(table.c.id == oldest.scalar_subquery(), due)
            .values(
                status="sending",
                next_attempt_at=now + lease,
                attempts=table.c.attempts + 1,
                # Claiming an expired lease re-sends a message whose outcome was lost: once.
                last_error=case(
                    (table.c.status == "sending", LEASE_LOST), else_=table.c.last_error
                ),
            )
            .returning(table.c.id, table.c.attempts)
        ).first()
        if claimed is None:
            return None
        row = own.get(OutboxMessage, claimed.id)
        assert row is not None
        email = to_email(row, mail_from)
    # Committed: nothing is held open while the mail server answers.
    return claimed.id, claimed.attempts, email


def _give_up_lost(bind: Engine | Connection, now: datetime) -> int:
    """A message whose outcome was lost twice is not sent a third time."""
    table = _OUTBOX
    with Session(bind) as own, own.begin():
        result = own.execute(
            update(table)
            .where(
                table.c.status == "sending",
                table.c.next_attempt_at <= now,
                table.c.last_error == LEASE_LOST,
            )
            .values(status="failed", **_SCRUBBED)
        )
    return int(cast(CursorResult[Any], result).rowcount)


def _record(bind: Engine | Connection, message_id: str, values: dict[str, Any]) -> None:
    table = _OUTBOX
    with Session(bind) as own, own.begin():
        own.execute(
            update(table)
            .where(table.c.id == message_id, table.c.status == "sending")
            .values(values)
        )


T = TypeVar("T")
RECORD_TRIES = 8


def _retrying(sleep: Callable[[float], None], work: Callable[[], T]) -> T:
    """Run one short transaction again while the database is locked or busy (each attempt's
    transaction is rolled back by its own `begin()` block when it fails)."""
    for attempt in range(RECORD_TRIES):
        try:
            return work()
        except OperationalError:
            if attempt == RECORD_TRIES - 1:
                raise
            sleep(min(0.05 * 2**attempt, 2.0))
    raise AssertionError("unreachable")


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
