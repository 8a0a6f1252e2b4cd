"""Equal work for known and unknown addresses on every public form that takes one.

Whether an address is known must not show in what a form does: the same SQL statements in the
same order, the same outbox rows (a mail goes out through the outbox either way) and the same
answer, byte for byte apart from tokens. Times are measured by bench/equal_work.py, never here.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, event, func, select
from sqlalchemy.orm import Session

from app.domain.rules import Rules
from app.models import OutboxMessage
from tests.web.pages import csrf_token, preference_token, subscriber

TOKEN = re.compile(r"(/p/|/confirm/|csrf_token\" value=\")[\w.\-]+")
LITERAL = re.compile(r"'[^']*'|\b\d+\b")


@contextmanager
def statements(app: Flask) -> Iterator[list[str]]:
    """Every SQL statement the app's engine sends while the block runs, literals blanked."""
    from app.extensions import db

    with app.app_context():
        engine = db.engine
    sent: list[str] = []

    def note(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        sent.append(LITERAL.sub("?", statement))

    event.listen(engine, "before_cursor_execute", note)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", note)


def outbox(engine: Engine) -> list[tuple[str | None, str | None]]:
    with Session(engine) as session:
        rows = session.execute(select(OutboxMessage.template, OutboxMessage.to_address))
        return [tuple(row) for row in rows.all()]  # type: ignore[misc]


def outbox_count(engine: Engine) -> int:
    with Session(engine) as session:
        return int(session.scalar(select(func.count()).select_from(OutboxMessage)) or 0)


Post = Callable[[str], tuple[int, str, bytes]]


def work(app: Flask, engine: Engine, post: Post, email: str) -> tuple[list[str], int, object]:
    """The statements, the outbox rows added and the answer of one post of `email`."""
    before = outbox_count(engine)
    with statements(app) as sent:
        status, location, body = post(email)
    answer = (status, TOKEN.sub(r"\1…", location), TOKEN.sub(r"\1…", body.decode()))
    return sent, outbox_count(engine) - before, answer


def assert_equal_work(
    app: Flask,
    engine: Engine,
    post: Post,
    known: str,
    unknown: str,
    *,
    is_same_statements: bool = True,
) -> None:
    post("warm@example.org")  # the first request of an app compiles and caches what others reuse
    known_work = work(app, engine, post, known)
    unknown_work = work(app, engine, post, unknown)
    assert known_work[1] == unknown_work[1] == 1  # one outbox row either way
    assert known_work[2] == unknown_work[2]  # the same answer
    if is_same_statements:
        assert known_work[0] == unknown_work[0]  # the same statements, in the same order


def form_poster(client: FlaskClient, page: str, action: str, **fields: str) -> Post:
    def post(email: str) -> tuple[int, str, bytes]:
        html = client.get(page).get_data(as_text=True)
        data = {"csrf_token": csrf_token(html), "email": email, **fields}
        response = client.post(action, data=data)
        return response.status_code, response.headers.get("Location", ""), response.get_data()

    return post


@pytest.fixture
def known(clean_db: Engine, rules: Rules) -> str:
    """A confirmed subscriber, with the shipped notices published."""
    return subscriber(clean_db, rules, email="known@example.org")


def test_subscribe_mails_a_known_address_as_it_mails_an_unknown_one(
    app: Flask, client: FlaskClient, clean_db: Engine, known: str
) -> None:
    post = form_poster(
        client, "/subscribe", "/subscribe", categories="newsletter", notice_version="2026-11-01"
    )
    # A new address is recorded (a subject, its events, a request) where a known one that
    # asks for nothing new is not: the statements differ, the mail and the answer do not.
    assert_equal_work(
        app, clean_db, post, "known@example.org", "new@example.org", is_same_statements=False
    )
    assert [t for t, to in outbox(clean_db) if to == "known@example.org"] == ["already_subscribed"]


def test_the_link_request_does_the_same_work_for_a_known_address(
    app: Flask, client: FlaskClient, clean_db: Engine, known: str
) -> None:
    post = form_poster(client, "/preferences", "/preferences", website="")
    assert_equal_work(app, clean_db, post, "known@example.org", "new@example.org")


def test_adding_an_address_another_person_holds_mails_as_adding_a_new_one(
    app: Flask, client: FlaskClient, clean_db: Engine, rules: Rules, known: str
) -> None:
    page = f"/p/{preference_token(app, subscriber(clean_db, rules, email='ada@example.org'))}"
    post = form_poster(client, page, f"{page}/contacts/email", locale="en")
    # A new address is linked (an event) and asked to confirm; a held one is not linked.
    assert_equal_work(
        app, clean_db, post, "known@example.org", "new@example.org", is_same_statements=False
    )
    assert [t for t, to in outbox(clean_db) if to == "known@example.org"] == ["contact_taken"]
