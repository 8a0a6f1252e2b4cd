"""`consent-center worker` and the dev server's inline sender deliver the outbox."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from click.testing import CliRunner
from flask import Flask
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from app.cli import main
from app.models import OutboxMessage
from tests.conftest import DATABASE_URL, ApiClient
from tests.smtp import Inbox, confirm_link, smtp_server, text_of


def queue_one(api: ApiClient, email: str = "ada@example.org") -> None:
    response = api.post("/v1/subscriptions", json={"email": email, "categories": ["newsletter"]})
    assert response.status_code == 202


def environment(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        "DATABASE_URL": DATABASE_URL,
        "SECRET_KEY": "test-secret-key-that-is-long-enough",
        "INSTANCE_PATH": str(tmp_path / "instance"),
        "OUTBOX_DIR": str(tmp_path / "outbox"),
        "SMTP_HOST": "",
    } | extra


def test_worker_once_writes_eml_files_without_smtp_host(
    api: ApiClient, clean_db: Engine, tmp_path: Path
) -> None:
    queue_one(api)
    result = CliRunner().invoke(main, ["worker", "--once"], env=environment(tmp_path))
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) | {"jobs": []} == {
        "sent": 1,
        "deferred": 0,
        "failed": 0,
        "webhooks_sent": 0,
        "webhooks_failed": 0,
        "jobs": [],
    }
    [eml] = (tmp_path / "outbox").glob("*.eml")
    assert "/confirm/" in eml.read_text()
    with Session(clean_db) as session:
        assert session.scalars(select(OutboxMessage)).one().sent_at is not None


def test_worker_once_delivers_over_smtp(api: ApiClient, clean_db: Engine, tmp_path: Path) -> None:
    queue_one(api)
    with smtp_server(Inbox()) as (inbox, port):
        env = environment(tmp_path, SMTP_HOST="127.0.0.1", SMTP_PORT=str(port))
        result = CliRunner().invoke(main, ["worker", "--once"], env=env)
    assert result.exit_code == 0, result.output
    [message] = inbox.messages
    assert confirm_link(text_of(message)).startswith("http://localhost:5000/confirm/")


def test_the_worker_loop_stops_cleanly_on_sigterm(clean_db: Engine, tmp_path: Path) -> None:
    command = [sys.executable, "-m", "app.cli", "worker", "--interval", "0.2"]
    worker = subprocess.Popen(
        command,
        env=os.environ | environment(tmp_path),
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert worker.stderr is not None
        assert "delivering the outbox" in worker.stderr.readline()
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=20) == 0
    finally:
        if worker.poll() is None:
            worker.kill()


def test_the_dev_server_sends_mail_inline(
    make_app: Callable[..., Flask], api: ApiClient, clean_db: Engine
) -> None:
    with smtp_server(Inbox()) as (inbox, port):
        app = make_app(send_mail_inline=True, smtp_host="127.0.0.1", smtp_port=port)
        try:
            queue_one(api)  # through another app on the same database: the outbox is shared
            deadline = time.monotonic() + 20
            while not inbox.messages and time.monotonic() < deadline:
                time.sleep(0.1)
        finally:
            app.extensions["inline_mail_stop"].set()
    [message] = inbox.messages
    assert "/confirm/" in text_of(message)
