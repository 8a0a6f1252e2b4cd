"""The database goes away and comes back: 503 problems (never a 500) while it is gone, then
service as usual, with nothing written twice or lost.

PostgreSQL is reached through a TCP proxy on 127.0.0.1 that the test stops and restarts;
SQLite through a directory that the test moves away and back.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from app.database import make_engine
from app.extensions import db
from app.migrate import upgrade
from app.services import clients
from tests.conftest import DATABASE_URL

CHECK = "/v1/consent/check?email=a@example.org&channel=email&category=newsletter"
SUBSCRIBE = {"email": "outage@example.org", "categories": ["newsletter"]}


class TcpProxy:
    """Forwards 127.0.0.1:port to a target; `stop` drops the listener and every connection."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = 0
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(32)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def stop(self) -> None:
        with self._lock:
            doomed, self._sockets = self._sockets, []
        if self._listener is not None:
            doomed.append(self._listener)
            self._listener = None
        for sock in doomed:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while chunk := source.recv(65536):
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


class Outage:
    """A database URL for the app, and the means to take that database away and back."""

    def __init__(self, url: str, down: Callable[[Flask], None], up: Callable[[], None]) -> None:
        self.url, self.down, self.up = url, down, up


@pytest.fixture
def outage(clean_db: Engine, tmp_path: Path) -> Iterator[Outage]:
    if clean_db.dialect.name == "postgresql":
        url = make_url(DATABASE_URL)
        proxy = TcpProxy((url.host or "127.0.0.1", url.port or 5432))
        proxy.start()
        proxied = url.set(host="127.0.0.1", port=proxy.port)
        # The pool keeps its (now dead) connections: pre-ping must notice and reconnect.
        yield Outage(
            proxied.render_as_string(hide_password=False), lambda _app: proxy.stop(), proxy.start
        )
        proxy.stop()
        return
    folder = tmp_path / "db"
    folder.mkdir()
    sqlite_url = f"sqlite:///{folder / 'outage.db'}"
    upgrade(sqlite_url)
    away = tmp_path / "db-away"

    def move_away(app: Flask) -> None:
        shutil.move(folder, away)
        # An open SQLite handle outlives a moved file; a lost volume takes the handles too.
        with app.app_context():
            db.engine.dispose()

    def move_back() -> None:
        shutil.move(away, folder)

    yield Outage(sqlite_url, move_away, move_back)


def _token(http: FlaskClient, url: str) -> dict[str, str]:
    engine = make_engine(url)
    try:
        with Session(engine) as session:
            credentials = clients.create(
                session, "crm", "consent:read consent:write audit:read", iterations=1
            )
    finally:
        engine.dispose()
    response = http.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(credentials.client_id, credentials.client_secret),
    )
    assert response.status_code == 200, response.get_json()
    return {"Authorization": f"Bearer {response.get_json()['access_token']}"}


def _is_unavailable(response: Any) -> bool:
    return bool(
        response.status_code == 503
        and response.mimetype == "application/problem+json"
        and response.get_json()["status"] == 503
    )


def test_the_database_going_away_is_a_503_and_service_resumes(
    make_app: Callable[..., Flask], outage: Outage
) -> None:
    app = make_app(database_url=outage.url)
    http = app.test_client()
    headers = _token(http, outage.url)
    assert http.get("/readyz").status_code == 200
    assert http.get(CHECK, headers=headers).status_code == 200

    outage.down(app)
    ready = http.get("/readyz")
    assert _is_unavailable(ready)
    assert ready.headers["Retry-After"].isdigit()
    for streamed in ("/v1/audit/package", "/v1/audit/export?format=csv"):
        answer = http.get(streamed, headers=headers)
        assert _is_unavailable(answer), streamed  # before streaming, not inside the stream
        assert answer.headers["Retry-After"].isdigit()
    check = http.get(CHECK, headers=headers)
    assert _is_unavailable(check)
    assert check.headers["Retry-After"]
    assert _is_unavailable(http.post("/v1/subscriptions", json=SUBSCRIBE, headers=headers))
    token = http.post("/oauth/token", data={"grant_type": "client_credentials"}, auth=("a", "b"))
    assert token.status_code == 503

    outage.up()
    assert http.get("/readyz").status_code == 200
    assert http.get(CHECK, headers=headers).status_code == 200
    subscribed = http.post("/v1/subscriptions", json=SUBSCRIBE, headers=headers)
    assert subscribed.status_code == 202
    lookup = http.get("/v1/subjects?email=outage@example.org", headers=headers)
    assert lookup.status_code == 200
