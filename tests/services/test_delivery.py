"""Delivering the outbox: claimed before sending, recorded after, never sent twice or forever."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from email.message import EmailMessage
from typing import Any

import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from app.database import make_engine
from app.domain.rules import Rules
from app.models import OutboxMessage, utcnow
from app.services.delivery import mail
from tests.conftest import DATABASE_URL
from tests.services.test_optin import make_mailer, published, sign_up
from tests.smtp import Inbox, smtp_server

__all__ = ["published"]  # the fixture, shared with the sign-up tests

FROM = "cc@example.org"


class Refusing(Inbox):
    """A mail server that answers RCPT TO with a fixed reply."""

    def __init__(self, reply: str) -> None:
        super().__init__()
        self.reply = reply

    async def handle_RCPT(  # noqa: N802
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if self.reply.startswith("250"):
            envelope.rcpt_tos.append(address)
        return self.reply


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    with smtp_server(Inbox()) as running:
        yield running


def queue(session: Session, count: int = 1, to: str = "ada@example.org") -> list[str]:
    rendered = mail.Rendered("hello", "en", "Hello", "Hi.\n", None, "v1", "0" * 64)
    rows = [
        mail.enqueue(session, rendered, to=to, mail_from=FROM, subject_id=None)
        for _ in range(count)
    ]
    session.commit()
    return [row.message_id for row in rows]


def received_ids(inbox: Inbox) -> list[str]:
    return [str(message["Message-ID"]) for message in inbox.messages]


@pytest.mark.parametrize("reply", ["550 5.1.1 No such user", "554 5.7.1 Rejected"])
def test_a_permanent_refusal_is_final_and_keeps_no_personal_data(
    session: Session, reply: str
) -> None:
    with smtp_server(Refusing(reply)) as (_, port):
        queue(session)
        outcome = mail.deliver_due(session, mail.SmtpTransport("127.0.0.1", port), mail_from=FROM)
        later = mail.deliver_due(
            session,
            mail.SmtpTransport("127.0.0.1", port),
            mail_from=FROM,
            now=utcnow() + timedelta(days=2),
        )
    assert (outcome.sent, outcome.deferred, outcome.failed) == (0, 0, 1)
    assert (later.sent, later.deferred, later.failed) == (0, 0, 0)  # never retried
    row = session.scalars(select(OutboxMessage)).one()
    assert row.status == "failed"
    assert (row.to_address, row.body_text, row.body_html) == (None, None, None)
    assert row.last_error is not None
    assert reply.split()[0] in row.last_error


def test_a_temporary_refusal_backs_off_and_keeps_the_message(session: Session) -> None:
    with smtp_server(Refusing("451 4.3.0 Try again later")) as (_, port):
        queue(session)
        outcome = mail.deliver_due(session, mail.SmtpTransport("127.0.0.1", port), mail_from=FROM)
    assert (outcome.sent, outcome.deferred, outcome.failed) == (0, 1, 0)
    row = session.scalars(select(OutboxMessage)).one()
    assert row.status == "queued"
    assert row.to_address == "ada@example.org"
    assert row.next_attempt_at > utcnow() + timedelta(seconds=20)


class CrashAfterSending:
    """Sends, then dies before the outcome is recorded (a worker killed at the worst moment)."""

    def __init__(self, port: int) -> None:
        self.smtp = mail.SmtpTransport("127.0.0.1", port)

    def send(self, message: EmailMessage) -> None:
        self.smtp.send(message)
        raise KeyboardInterrupt


def test_a_crash_between_sending_and_recording_repeats_at_most_once(
    session: Session, smtp: tuple[Inbox, int]
) -> None:
    inbox, port = smtp
    [message_id] = queue(session)
    crash = CrashAfterSending(port)
    start = utcnow()
    for hours in range(4):  # each pass comes after the previous lease has expired
        try:
            mail.deliver_due(session, crash, mail_from=FROM, now=start + timedelta(hours=hours))
        except KeyboardInterrupt:
            session.rollback()
    assert received_ids(inbox) == [message_id, message_id]  # once, and one repeat: no loop
    row = session.scalars(select(OutboxMessage)).one()
    assert row.status == "failed"
    assert row.last_error == mail.LEASE_LOST
    assert row.to_address is None


def test_a_claimed_message_is_not_sent_by_a_second_worker(
    session: Session, smtp: tuple[Inbox, int]
) -> None:
    inbox, port = smtp
    [message_id] = queue(session)
    crash = CrashAfterSending(port)
    with pytest.raises(KeyboardInterrupt):
        mail.deliver_due(session, crash, mail_from=FROM)
    session.rollback()
    # The lease still runs: another worker finds nothing due.
    other = mail.deliver_due(session, mail.SmtpTransport("127.0.0.1", port), mail_from=FROM)
    assert (other.sent, other.deferred) == (0, 0)
    assert received_ids(inbox) == [message_id]


def test_the_outcome_is_recorded_when_the_database_was_locked_at_first(
    clean_db: Engine, smtp: tuple[Inbox, int]
) -> None:
    inbox, port = smtp
    # A short lock wait, so "database is locked" (or lock_timeout) really happens.
    options: dict[str, Any] = (
        {"connect_args": {"isolation_level": None, "timeout": 0.1, "check_same_thread": False}}
        if clean_db.dialect.name == "sqlite"
        else {"connect_args": {"options": "-c lock_timeout=100"}}
    )
    engine = make_engine(DATABASE_URL, **options)
    if engine.dialect.name == "sqlite":
        from sqlalchemy import event

        @event.listens_for(engine, "connect")
        def short_busy(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.execute("PRAGMA busy_timeout=100")

    with Session(engine) as session:
        [message_id] = queue(session)

    class LockingTransport:
        """Delivers, then has another connection hold the outbox locked for a while."""

        def __init__(self) -> None:
            self.smtp = mail.SmtpTransport("127.0.0.1", port)
            self.released = threading.Event()

        def send(self, message: EmailMessage) -> None:
            self.smtp.send(message)
            locked = threading.Event()

            def hold() -> None:
                with clean_db.connect() as connection:
                    connection.execute(text("UPDATE outbox_messages SET attempts = attempts"))
                    locked.set()
                    time.sleep(0.6)
                    connection.commit()

            threading.Thread(target=hold).start()
            locked.wait(5)

    with Session(engine) as session:
        outcome = mail.deliver_due(session, LockingTransport(), mail_from=FROM)
        assert outcome.sent == 1
        row = session.scalars(select(OutboxMessage)).one()
        assert row.status == "sent"
    engine.dispose()
    assert received_ids(inbox) == [message_id]


@pytest.mark.slow
def test_under_load_every_message_id_arrives_exactly_once(
    published: Session, rules: Rules, smtp: tuple[Inbox, int]
) -> None:
    """Four writers signing 120 people up (or for 20 s on a slow host) while two delivery
    loops run: on SQLite this once turned 1,334 messages into 1,350 deliveries."""
    inbox, port = smtp
    engine = published.get_bind()
    assert isinstance(engine, Engine)
    writing, delivering = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    signed_up: list[str] = []

    def writer(number: int) -> None:
        mailer = make_mailer()
        with Session(engine) as session:
            count = 0
            while not writing.is_set() and len(signed_up) < 120:
                email = f"w{number}.{count}@example.org"
                try:
                    sign_up(session, rules, mailer, email=email)
                    signed_up.append(email)
                except OperationalError:
                    session.rollback()  # a locked database refuses a writer, never a delivery
                count += 1

    def deliverer() -> None:
        transport = mail.SmtpTransport("127.0.0.1", port)
        with Session(engine) as session:
            while not delivering.is_set():
                try:
                    mail.deliver_due(session, transport, mail_from=FROM, limit=20)
                except BaseException as error:  # the test fails on any, at the end
                    errors.append(error)
                    session.rollback()
                delivering.wait(0.05)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    loops = [threading.Thread(target=deliverer) for _ in range(2)]
    for thread in threads + loops:
        thread.start()
    stop_writing_at = time.monotonic() + 20
    for thread in threads:
        thread.join(timeout=max(0.0, stop_writing_at - time.monotonic()))
    writing.set()
    for thread in threads:
        thread.join()
    deadline = time.monotonic() + 20  # draining takes a second or two unless the host is busy
    while time.monotonic() < deadline:
        due = published.scalar(
            select(func.count()).select_from(OutboxMessage).where(OutboxMessage.status != "sent")
        )
        published.rollback()
        if not due:
            break
        time.sleep(0.1)
    delivering.set()
    for thread in loops:
        thread.join()
    assert not errors, errors[:3]
    queued = set(published.scalars(select(OutboxMessage.message_id)))
    counts = Counter(received_ids(inbox))
    assert len(queued) >= 20  # a real load, however slow the host: the race needs overlap
    assert set(counts) == queued
    assert set(counts.values()) == {1}
