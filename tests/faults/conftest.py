"""A real gunicorn on a free 127.0.0.1 port, serving the test database, for fault tests."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from app.services import clients
from tests.conftest import DATABASE_URL, IDENTIFIER_KEY

ROOT = Path(__file__).parents[2]
APP = "app:create_app()"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Answer:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Gunicorn:
    process: subprocess.Popen[bytes]
    base: str
    access_log: Path
    token: str = ""

    def request(self, method: str, path: str, body: Any = None, *, timeout: float = 10) -> Answer:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if data else {}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        req = urllib.request.Request(self.base + path, data, headers, method=method)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as response:
                return Answer(response.status, _json(response.read()), dict(response.headers))
        except urllib.error.HTTPError as error:
            return Answer(error.code, _json(error.read()), dict(error.headers))

    def authorize(self, client_id: str, secret: str) -> None:
        form = f"grant_type=client_credentials&client_id={client_id}&client_secret={secret}"
        req = urllib.request.Request(
            self.base + "/oauth/token",
            form.encode(),
            {"Content-Type": "application/x-www-form-urlencoded"},
        )
        with urllib.request.urlopen(req, timeout=10) as response:
            self.token = json.loads(response.read())["access_token"]

    def worker_pids(self) -> list[int]:
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return [int(pid) for pid in children.read_text().split()]


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace")


def start_gunicorn(tmp: Path, *, workers: int = 2, **env: str) -> Gunicorn:
    port = free_port()
    access_log = tmp / "access.log"
    environ = (
        os.environ
        | {
            "DATABASE_URL": DATABASE_URL,
            "SECRET_KEY": "fault-test-secret-key-long-enough",
            "INSTANCE_PATH": str(tmp / "instance"),
            "OUTBOX_DIR": str(tmp / "outbox"),
            "BASE_URL": f"http://127.0.0.1:{port}",
            "RATELIMIT_ENABLED": "false",
            "GUNICORN_BIND": f"127.0.0.1:{port}",
            "GUNICORN_WORKERS": str(workers),
            "GUNICORN_ACCESS_LOG": str(access_log),
            "AUDIT_SIGNING_KEY_PATH": str(tmp / "audit-signing-key.json"),
            "IDENTIFIER_HMAC_KEY": IDENTIFIER_KEY.decode(),
        }
        | env
    )
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "-c",
            str(ROOT / "gunicorn.conf.py"),
            "app:create_app()",
        ],
        cwd=ROOT,
        env=environ,
        stdout=subprocess.DEVNULL,
        stderr=(tmp / "gunicorn.err").open("wb"),
    )
    server = Gunicorn(process, f"http://127.0.0.1:{port}", access_log)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError((tmp / "gunicorn.err").read_text())
        try:
            if server.request("GET", "/healthz", timeout=1).status == 200:
                return server
        except OSError:
            time.sleep(0.1)
    stop(server)
    raise RuntimeError("gunicorn did not start within 30 s")


def stop(server: Gunicorn) -> None:
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGINT)  # quick shutdown: nothing to drain in a test
        try:
            server.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()


@pytest.fixture
def gunicorn(tmp_path: Path, clean_db: Engine) -> Iterator[Callable[..., Gunicorn]]:
    """Starts gunicorn (stopped after the test) with a client holding every scope."""
    started: list[Gunicorn] = []

    def start(**options: Any) -> Gunicorn:
        server = start_gunicorn(tmp_path, **options)
        started.append(server)
        with Session(clean_db) as session:
            credentials = clients.create(
                session, "faults", "consent:read consent:write audit:read", iterations=1000
            )
        server.authorize(credentials.client_id, credentials.client_secret)
        return server

    yield start
    for server in started:
        stop(server)
