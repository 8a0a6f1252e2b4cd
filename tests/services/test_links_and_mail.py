"""Signed links and the mail outbox, without HTTP."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from app.domain.errors import ExpiredTokenError, InvalidTokenError, UsedTokenError
from app.models import OutboxMessage
from app.services import tokens
from app.services.delivery import mail

TTL = {purpose: timedelta(hours=1) for purpose in tokens.Purpose}


def test_a_link_opens_only_for_its_own_purpose() -> None:
    signer = tokens.Tokens("secret", TTL)
    token = signer.make(tokens.Purpose.PREFERENCES, {"s": "subject-1"})
    assert signer.open(tokens.Purpose.PREFERENCES, token).payload == {"s": "subject-1"}
    with pytest.raises(InvalidTokenError):
        signer.open(tokens.Purpose.UNSUBSCRIBE, token)
    with pytest.raises(InvalidTokenError):
        tokens.Tokens("other secret", TTL).open(tokens.Purpose.PREFERENCES, token)
    with pytest.raises(InvalidTokenError):
        signer.open(tokens.Purpose.PREFERENCES, token[:-3] + "abc")


def test_an_expired_link_is_told_apart_from_a_forged_one() -> None:
    expired = tokens.Tokens("secret", {**TTL, tokens.Purpose.ACCESS: timedelta(seconds=-1)})
    token = expired.make(tokens.Purpose.ACCESS, {"s": "x"})
    with pytest.raises(ExpiredTokenError):
        expired.open(tokens.Purpose.ACCESS, token)


def test_a_single_use_link_is_spent_once(session: Session) -> None:
    expires = datetime.now(UTC) + timedelta(minutes=30)
    tokens.spend(session, "token-a", tokens.Purpose.ACCESS, expires)
    session.commit()
    with pytest.raises(UsedTokenError):
        tokens.spend(session, "token-a", tokens.Purpose.ACCESS, expires)


class FlakyTransport:
    def __init__(self) -> None:
        self.is_up = False
        self.sent: list[EmailMessage] = []

    def send(self, message: EmailMessage) -> None:
        if not self.is_up:
            raise ConnectionRefusedError("smtp is down")
        self.sent.append(message)


def write_template(directory: Path) -> mail.MailTemplates:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "hello.en.txt").write_text("Subject: Hello {{ name }}\n\nHi {{ name }}.\n")
    (directory / "hello.de.txt").write_text("Subject: Hallo {{ name }}\n\nHallo {{ name }}.\n")
    return mail.MailTemplates(directory)


def test_templates_render_by_locale_with_a_hash_of_their_source(tmp_path: Path) -> None:
    templates = write_template(tmp_path)
    german = templates.render("hello", "de", {"name": "Ada"})
    assert (german.subject, german.text, german.locale) == ("Hallo Ada", "Hallo Ada.\n", "de")
    fallback = templates.render("hello", "it", {"name": "Ada"})
    assert fallback.locale == "en"
    assert len(german.sha256) == 64
    assert german.sha256 != fallback.sha256


def test_mail_waits_in_the_outbox_while_smtp_is_down_and_goes_out_after(
    session: Session, tmp_path: Path
) -> None:
    rendered = write_template(tmp_path).render("hello", "en", {"name": "Ada"})
    now = datetime.now(UTC)
    mail.enqueue(
        session,
        rendered,
        to="ada@example.org",
        mail_from="cc@example.org",
        subject_id=None,
        now=now,
    )
    session.commit()
    transport = FlakyTransport()
    down = mail.deliver_due(session, transport, mail_from="cc@example.org", now=now)
    assert (down.sent, down.deferred) == (0, 1)
    row = session.query(OutboxMessage).one()
    assert row.status == "queued"
    assert row.last_error is not None
    too_soon = mail.deliver_due(session, transport, mail_from="cc@example.org", now=now)
    assert (too_soon.sent, too_soon.deferred) == (0, 0)
    transport.is_up = True
    later = now + mail.MAX_BACKOFF
    up = mail.deliver_due(session, transport, mail_from="cc@example.org", now=later)
    assert (up.sent, up.deferred) == (1, 0)
    (message,) = transport.sent
    assert message["Message-ID"] == row.message_id
    assert message["Subject"] == "Hello Ada"
    delivered = session.query(OutboxMessage).one()
    assert delivered.status == "sent"
    assert (delivered.to_address, delivered.body_text) == (None, None)  # proof kept, copy gone
    assert delivered.message_id == row.message_id


def test_without_smtp_mail_is_written_as_eml_files(tmp_path: Path) -> None:
    transport = mail.transport_for(None, 25, tmp_path / "outbox")
    message = EmailMessage()
    message["Message-ID"] = "<abc@example.org>"
    message.set_content("hi")
    transport.send(message)
    assert [p.suffix for p in (tmp_path / "outbox").iterdir()] == [".eml"]


def test_message_ids_stay_unique_when_random_is_seeded(session: Session, tmp_path: Path) -> None:
    import random

    rendered = write_template(tmp_path).render("hello", "en", {"name": "Ada"})
    ids = set()
    for _ in range(3):
        random.seed(0)  # what a seeded test run does to the global generator
        row = mail.enqueue(
            session, rendered, to="a@example.org", mail_from="cc@example.org", subject_id=None
        )
        ids.add(row.message_id)
    assert len(ids) == 3
