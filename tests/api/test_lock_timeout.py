"""A write that cannot get the chain lock in time answers 503 with Retry-After, never hangs."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest
from flask import Flask
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session

from app.database import Timeouts, make_engine
from app.domain.vocabulary import ALL_SCOPES
from app.services import clients
from tests.conftest import DATABASE_URL

SHORT = timedelta(milliseconds=300)


@contextmanager
def chain_locked(engine: Engine) -> Iterator[None]:
    """A stuck transaction holding the chain head, as a crashed request once did."""
    with engine.connect() as connection:
        connection.execute(text("UPDATE chain_heads SET last_seq = last_seq"))
        yield
        connection.rollback()


def token_for(app: Flask, engine: Engine) -> str:
    with Session(engine) as session:
        credentials = clients.create(session, "tests", " ".join(ALL_SCOPES), iterations=1000)
    response = app.test_client().post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(credentials.client_id, credentials.client_secret),
    )
    return str(response.get_json()["access_token"])


def test_a_write_behind_a_held_chain_lock_is_a_503_with_retry_after(
    make_app: Callable[..., Flask], clean_db: Engine
) -> None:
    app = make_app(db_lock_timeout=SHORT)
    token = token_for(app, clean_db)
    with chain_locked(clean_db):
        started = time.monotonic()
        response = app.test_client().post(
            "/v1/subscriptions",
            json={"email": "ada@example.org", "categories": ["newsletter"]},
            headers={"Authorization": f"Bearer {token}"},
        )
        elapsed = time.monotonic() - started
    assert response.status_code == 503
    assert response.mimetype == "application/problem+json"
    assert response.headers["Retry-After"].isdigit()
    assert response.get_json()["status"] == 503
    assert elapsed < 5  # it was 32 s, until gunicorn killed the worker


@pytest.mark.skipif(not DATABASE_URL.startswith("postgresql"), reason="PostgreSQL settings")
def test_postgresql_sessions_carry_the_three_timeouts_and_no_jit() -> None:
    engine = make_engine(
        DATABASE_URL,
        timeouts=Timeouts(
            lock=timedelta(seconds=2),
            statement=timedelta(milliseconds=300),
            idle_in_transaction=timedelta(milliseconds=400),
        ),
    )
    with engine.connect() as connection:
        shown = [
            connection.scalar(text(f"SHOW {name}"))
            for name in (
                "lock_timeout",
                "statement_timeout",
                "idle_in_transaction_session_timeout",
                "jit",
            )
        ]
        assert shown == ["2s", "300ms", "400ms", "off"]
        with pytest.raises(OperationalError):
            connection.execute(text("SELECT pg_sleep(2)"))
        connection.rollback()
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))
        threading.Event().wait(1)  # idle in the open transaction past its limit
        with pytest.raises(DBAPIError, match="idle-in-transaction"):
            connection.execute(text("SELECT 1"))
    engine.dispose()
