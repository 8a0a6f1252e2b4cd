"""DATABASE_READ_URL: the check, the batch and the audit export read from the replica, and say
so; writes stay on the primary. The "replica" is a second database (or a read-only role)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import Engine, create_engine, make_url, text
from sqlalchemy.orm import Session

from app.domain.rules import Rules
from app.extensions import db
from app.migrate import upgrade
from tests.conftest import DATABASE_URL, ApiClient
from tests.factories import make_subscriber

CHECK = "/v1/consent/check?email=ada@example.org&channel=email&category=newsletter"


@pytest.fixture
def empty_replica(tmp_path: Path) -> Iterator[str]:
    """A second, migrated, empty database on the same server (or a second SQLite file)."""
    if not DATABASE_URL.startswith("postgresql"):
        url = f"sqlite:///{tmp_path / 'replica.db'}"
        upgrade(url)
        yield url
        return
    primary = make_url(DATABASE_URL)
    name = f"{primary.database}_replica"
    admin = create_engine(primary.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = primary.set(database=name).render_as_string(hide_password=False)
    upgrade(url)
    yield url
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def read_only_role(clean_db: Engine, tmp_path: Path) -> str:
    """The same data through a connection that cannot write: a read-only role or file."""
    if not DATABASE_URL.startswith("postgresql"):
        path = make_url(DATABASE_URL).database
        return f"sqlite:///file:{path}?mode=ro&uri=true"
    with clean_db.begin() as connection:
        connection.execute(
            text(
                "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'cc_reader') "
                "THEN CREATE ROLE cc_reader LOGIN; END IF; END $$"
            )
        )
        connection.execute(text("GRANT USAGE ON SCHEMA public TO cc_reader"))
        connection.execute(text("GRANT SELECT ON ALL TABLES IN SCHEMA public TO cc_reader"))
    return make_url(DATABASE_URL).set(username="cc_reader", password=None).render_as_string()


def test_the_check_reads_from_the_replica_and_says_so(
    clean_db: Engine,
    rules: Rules,
    api: ApiClient,
    make_app: Callable[..., Flask],
    empty_replica: str,
) -> None:
    with Session(clean_db) as session:
        make_subscriber(session, rules)
    assert api.get(CHECK).get_json()["reason"] == "granted"  # the primary has it
    assert "read_from" not in api.get(CHECK).get_json()

    app = make_app(database_read_url=empty_replica)
    client = app.test_client()
    try:
        answer = client.get(CHECK, headers=api.headers).get_json()
        assert answer["reason"] == "no_record"  # the replica has not caught up (it never will)
        assert answer["read_from"] == "replica"
        batch = client.post(
            "/v1/consent/check",
            json={"channel": "email", "category": "newsletter", "emails": ["ada@example.org"]},
            headers=api.headers,
        ).get_json()
        assert batch["read_from"] == "replica"
        assert batch["results"][0]["reason"] == "no_record"
        export = client.get("/v1/audit/export?format=ndjson", headers=api.headers)
        assert export.status_code == 200
        assert export.get_data(as_text=True) == ""  # the replica's (empty) trail
        # Writes go to the primary.
        written = client.post(
            "/v1/subscriptions",
            json={"email": "bo@example.org", "categories": ["newsletter"]},
            headers=api.headers,
        )
        assert written.status_code == 202
        assert api.get(CHECK.replace("ada", "bo")).get_json()["reason"] == "pending_confirmation"
    finally:
        app.extensions["replica_engine"].dispose()


def test_a_read_only_role_serves_the_same_answers(
    clean_db: Engine,
    rules: Rules,
    api: ApiClient,
    make_app: Callable[..., Flask],
    read_only_role: str,
) -> None:
    with Session(clean_db) as session:
        make_subscriber(session, rules)
    app = make_app(database_read_url=read_only_role)
    try:
        answer = app.test_client().get(CHECK, headers=api.headers).get_json()
        assert (answer["reason"], answer["read_from"]) == ("granted", "replica")
        with app.app_context():
            assert db.engine.url != app.extensions["replica_engine"].url
    finally:
        app.extensions["replica_engine"].dispose()
