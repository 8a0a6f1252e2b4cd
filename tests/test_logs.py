"""No token from a URL path and no personal data from a query string reaches a log line."""

from __future__ import annotations

import contextlib
import logging
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator

import pytest
from flask import Flask
from werkzeug.serving import BaseWSGIServer, make_server

from app.logs import REDACTED, redact

TOKEN = "InFkYS0xMjM0NSI.ZxYwVg.k3mQ9a0xR2n7LzT5vW8yBc"
EMAIL = "ada.lovelace@example.org"
SUBJECT = "2f1e0c2a-6b8e-4c61-9d1e-3b7a3f8d9e10"


@pytest.mark.parametrize(
    "path",
    [
        f"/confirm/{TOKEN}",
        f"/p/{TOKEN}/export",
        "/u/short",
        f"/access/{TOKEN}",
        f"/anything/{TOKEN}",
        f"/v1/consent/check?email={EMAIL}&channel=email",
        "/v1/consent/check?email=ada.lovelace%40example.org&channel=email",
        f'"POST /confirm/{TOKEN}?email={EMAIL} HTTP/1.1" 200',
    ],
)
def test_tokens_queries_and_emails_are_redacted(path: str) -> None:
    cleaned = redact(path)
    assert REDACTED in cleaned
    for secret in (TOKEN, EMAIL, "ada.lovelace%40example.org", "short"):
        assert secret not in cleaned


def test_subject_ids_and_plain_paths_are_kept() -> None:
    assert redact(f"/v1/subjects/{SUBJECT}/preferences") == f"/v1/subjects/{SUBJECT}/preferences"
    assert redact("/v1/audit/verify") == "/v1/audit/verify"
    assert redact("Is the database up? No.") == "Is the database up? No."


def _leaks(text: str) -> list[str]:
    return [s for s in (TOKEN, EMAIL, "ada.lovelace%40example.org") if s in text]


@pytest.fixture
def dev_server(app: Flask) -> Iterator[BaseWSGIServer]:
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    thread.join(timeout=5)


def test_the_dev_servers_request_log_is_redacted(
    dev_server: BaseWSGIServer, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"http://127.0.0.1:{dev_server.server_port}/confirm/{TOKEN}?email={EMAIL}"
    # Whatever the page answers (it may not exist on this branch), the line is logged.
    with (
        caplog.at_level(logging.INFO, logger="werkzeug"),
        contextlib.suppress(urllib.error.HTTPError),
    ):
        urllib.request.urlopen(url, timeout=5).close()
    lines = [r.getMessage() for r in caplog.records if r.name == "werkzeug"]
    assert any("/confirm/" in line for line in lines)
    assert _leaks("\n".join(lines)) == []


def test_the_application_log_of_a_failure_is_redacted(
    make_app: Callable[..., Flask], caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app()
    app.config["PROPAGATE_EXCEPTIONS"] = False

    @app.get("/test-broken/<token>")
    def broken(token: str) -> str:
        raise RuntimeError(f"could not confirm {token} for {EMAIL}")

    with caplog.at_level(logging.ERROR):
        response = app.test_client().get(f"/test-broken/{TOKEN}?email={EMAIL}")
    assert response.status_code == 500
    logged = "\n".join(
        f"{r.getMessage()}\n{r.exc_text or ''}" for r in caplog.records if r.name == app.logger.name
    )
    assert "/test-broken/" in logged
    assert _leaks(logged) == []


class _Response:
    status = "200 OK"
    sent = 123
    headers = (("Content-Type", "application/json"), ("X-Request-ID", "req-1"))


class _Request:
    headers = (("Referer", f"https://example.org/confirm/{TOKEN}"), ("User-Agent", "ua"))


def _access_line(access_log_format: str) -> tuple[str, str]:
    """(the lean logger's line, the line of gunicorn's full atoms redacted the old way)."""
    import datetime

    from gunicorn.config import Config
    from gunicorn.glogging import Logger, SafeAtoms

    from app.logs import RedactingGunicornLogger

    cfg = Config()
    cfg.set("accesslog", "-")
    cfg.set("access_log_format", access_log_format)
    logger = RedactingGunicornLogger(cfg)
    environ = {
        "REQUEST_METHOD": "GET",
        "RAW_URI": f"/confirm/{TOKEN}?email={EMAIL}",
        "PATH_INFO": f"/confirm/{TOKEN}",
        "QUERY_STRING": f"email={EMAIL}",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
    }
    took = datetime.timedelta(microseconds=1234)
    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    keep = Keep()
    logger.access_log.addHandler(keep)
    try:
        logger.access(_Response(), _Request(), environ, took)
    finally:
        logger.access_log.removeHandler(keep)
    full = Logger.atoms(logger, _Response(), _Request(), environ, took)
    old = logger._redacted(full)
    return lines[-1], access_log_format % SafeAtoms(old)


def _project_access_log_format() -> str:
    """gunicorn.conf.py's format, read without running the file (it sets environment)."""
    import ast
    from pathlib import Path

    tree = ast.parse((Path(__file__).resolve().parent.parent / "gunicorn.conf.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == (
            "access_log_format"
        ):
            return str(ast.literal_eval(node.value))
    raise AssertionError("gunicorn.conf.py names no access_log_format")


def test_the_access_log_prints_what_the_full_redaction_did_for_the_projects_format() -> None:
    line, old = _access_line(_project_access_log_format())
    assert line.split('"duration_s"')[0] == old.split('"duration_s"')[0]
    assert '"request_id":"req-1"' in line
    assert _leaks(line) == []


@pytest.mark.parametrize(
    "access_log_format",
    ['%(h)s %(l)s %(u)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" %(D)s', "%(U)s %(q)s %({referer}i)s"],
)
def test_the_access_log_redacts_every_url_atom_of_any_format(access_log_format: str) -> None:
    line, old = _access_line(access_log_format)
    assert line == old
    assert _leaks(line) == []
