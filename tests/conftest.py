"""Fixtures for every layer. TEST_DATABASE_URL picks PostgreSQL; unset, each run uses SQLite.

The schema is built once per run by the real Alembic migrations; each test starts from
empty tables (the app under test opens its own connections, so rollback isolation won't do).
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import settings as hypothesis_settings
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from app import create_app
from app.config import Settings
from app.database import make_engine
from app.domain.catalog import Catalog, load_catalog
from app.domain.chain import GENESIS_HASH
from app.domain.rules import Rules
from app.domain.vocabulary import ALL_SCOPES
from app.limits import COUNTERS_FILE_SUFFIX
from app.migrate import upgrade
from app.models import Base
from app.services import clients

# CI must pass or fail on the code, not on the draw: there hypothesis (property tests and the
# schemathesis fuzzer) replays the same examples every run. Locally it explores anew each time.
hypothesis_settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    hypothesis_settings.load_profile("ci")

RUN_DIR = Path(tempfile.mkdtemp(prefix="consent-center-tests-"))
DATABASE_URL = os.environ.get("TEST_DATABASE_URL") or f"sqlite:///{RUN_DIR / 'test.db'}"
if DATABASE_URL.startswith("postgresql://"):
    DATABASE_URL = "postgresql+psycopg://" + DATABASE_URL.removeprefix("postgresql://")
IDENTIFIER_KEY = b"test-identifier-key"


def _reset_schema(engine: Engine) -> None:
    if engine.dialect.name == "postgresql":
        with engine.begin() as connection:
            connection.execute(text("DROP SCHEMA public CASCADE"))
            connection.execute(text("CREATE SCHEMA public"))


@pytest.fixture(scope="session")
def engine() -> Iterator[Engine]:
    engine = make_engine(DATABASE_URL)
    _reset_schema(engine)
    upgrade(DATABASE_URL)
    yield engine
    engine.dispose()


def _empty_tables(engine: Engine) -> None:
    tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            # Fail fast, never hang, if a test leaked an open transaction.
            connection.execute(text("SET LOCAL lock_timeout = '5s'"))
        # DELETE, not TRUNCATE: on tables this small it is many times faster on PostgreSQL.
        for table in tables:
            connection.execute(text(f"DELETE FROM {table}"))
        connection.execute(
            text(
                "INSERT INTO chain_heads (chain_id, last_seq, last_hash, base_seq, base_hash) "
                "VALUES ('main', 0, :h, 0, :h)"
            ),
            {"h": GENESIS_HASH},
        )
    counters = Path(f"{engine.url.database}{COUNTERS_FILE_SUFFIX}")
    if engine.dialect.name == "sqlite" and counters.exists():  # the rate limits' own file
        with closing(sqlite3.connect(counters)) as counts, counts:
            counts.execute("DELETE FROM rate_limit_counters")


@pytest.fixture
def clean_db(engine: Engine) -> Engine:
    _empty_tables(engine)
    return engine


@pytest.fixture
def session(clean_db: Engine) -> Iterator[Session]:
    """A plain SQLAlchemy session, no Flask: for service tests."""
    with Session(clean_db) as session:
        yield session


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    return load_catalog(Settings.__dataclass_fields__["catalog_path"].default)  # type: ignore[arg-type]


@pytest.fixture
def rules(catalog: Catalog) -> Rules:
    return Rules(catalog=catalog, identifier_key=IDENTIFIER_KEY)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        database_url=DATABASE_URL,
        secret_key="test-secret-key-that-is-long-enough",
        identifier_key=IDENTIFIER_KEY,
        instance_path=tmp_path / "instance",
        outbox_dir=tmp_path / "outbox",
        base_url="http://localhost:5000",
        ratelimit_enabled=False,
        audit_signing_key_path=tmp_path / "audit-signing-key.json",
    )


@pytest.fixture
def make_app(clean_db: Engine, settings: Settings) -> Iterator[Callable[..., Flask]]:
    made: list[Flask] = []

    def make(**overrides: Any) -> Flask:
        app = create_app(settings.with_overrides(**overrides) if overrides else settings)
        app.config["TESTING"] = True  # CSRF stays on: page tests post the token like a browser
        made.append(app)
        return app

    yield make
    for app in made:
        with app.app_context():
            from app.extensions import db

            db.engine.dispose()


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    return make_app()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@dataclass
class ApiClient:
    """A test client that carries a bearer token obtained from the real token endpoint."""

    http: FlaskClient
    token: str
    client_id: str
    client_secret: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def get(self, url: str, **kwargs: Any) -> Any:
        return self.http.get(url, headers=self.headers | kwargs.pop("headers", {}), **kwargs)

    def post(self, url: str, **kwargs: Any) -> Any:
        return self.http.post(url, headers=self.headers | kwargs.pop("headers", {}), **kwargs)

    def patch(self, url: str, **kwargs: Any) -> Any:
        return self.http.patch(url, headers=self.headers | kwargs.pop("headers", {}), **kwargs)

    def delete(self, url: str, **kwargs: Any) -> Any:
        return self.http.delete(url, headers=self.headers | kwargs.pop("headers", {}), **kwargs)


@pytest.fixture
def make_api(client: FlaskClient, clean_db: Engine) -> Callable[..., ApiClient]:
    def make(scopes: str | None = None) -> ApiClient:
        with Session(clean_db) as session:
            credentials = clients.create(
                session, "tests", scopes or " ".join(sorted(ALL_SCOPES)), iterations=1000
            )
        response = client.post(
            "/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=(credentials.client_id, credentials.client_secret),
        )
        body = response.get_json()
        assert response.status_code == 200, body
        return ApiClient(
            client, body["access_token"], credentials.client_id, credentials.client_secret
        )

    return make


@pytest.fixture
def api(make_api: Callable[..., ApiClient]) -> ApiClient:
    """An API client holding every scope."""
    return make_api()


@pytest.fixture
def check_parity(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Every GET /v1/consent/check answered by the fast path and by Flask, compared byte for
    byte (tests/check_parity.py); the test sees the fast path's answer."""
    from tests.check_parity import comparing

    with comparing(monkeypatch) as tally:
        yield tally
