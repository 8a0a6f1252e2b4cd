"""Against a real gunicorn: redacted access logs, and racing requests that write one event."""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from http.cookiejar import CookieJar

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from app.domain.rules import Rules
from app.domain.vocabulary import Action
from app.models import ConsentEvent, OutboxMessage
from app.services.audit import trail
from tests.concurrency import at_once
from tests.factories import make_subscriber
from tests.faults.conftest import ROOT, Answer, Gunicorn
from tests.smtp import confirm_link

TOKEN = "InFkYS0xMjM0NSI.ZxYwVg.k3mQ9a0xR2n7LzT5vW8yBc"
EMAIL = "ada.lovelace@example.org"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def test_gunicorns_access_log_holds_no_token_and_no_email(
    gunicorn: Callable[..., Gunicorn],
) -> None:
    server = gunicorn(workers=1)
    server.request("GET", f"/confirm/{TOKEN}?email={EMAIL}")
    server.request("POST", f"/u/{TOKEN}")
    check = server.request(
        "GET", f"/v1/consent/check?email={EMAIL}&channel=email&category=newsletter"
    )
    assert check.status == 200
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and "/v1/consent/check" not in server.access_log.read_text():
        time.sleep(0.05)  # gunicorn writes the line after the response
    log = server.access_log.read_text()
    assert "/confirm/[redacted]" in log
    assert "/v1/consent/check" in log
    for secret in (TOKEN, EMAIL, "example.org"):
        assert secret not in log


def _events(engine: Engine) -> int:
    with Session(engine) as session:
        return int(session.scalar(select(func.count()).select_from(ConsentEvent)) or 0)


def test_the_same_change_sent_twice_at_once_over_http_writes_one_event(
    gunicorn: Callable[..., Gunicorn], clean_db: Engine, rules: Rules
) -> None:
    server = gunicorn(workers=2)
    with Session(clean_db) as session:
        subject_id = make_subscriber(session, rules)
    path = f"/v1/subjects/{subject_id}/preferences"
    for status in ("withdrawn", "granted", "withdrawn", "granted", "withdrawn"):
        before = _events(clean_db)
        body = {"changes": [{"channel": "email", "category": "newsletter", "status": status}]}
        answers = at_once(
            lambda body=body: server.request("PATCH", path, body),  # type: ignore[misc]
            lambda body=body: server.request("PATCH", path, body),  # type: ignore[misc]
        )
        assert [a.status for a in answers] == [200, 200], [a.body for a in answers]
        assert _events(clean_db) == before + 1
    with Session(clean_db) as session:
        assert trail.verify(session).is_ok


def _browser() -> urllib.request.OpenerDirector:
    """A visitor of its own: a cookie jar holds its session, and so its CSRF token."""
    return urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))


def test_the_same_confirmation_posted_twice_at_once_over_http_confirms_once(
    gunicorn: Callable[..., Gunicorn], clean_db: Engine
) -> None:
    server = gunicorn(workers=2)
    body = {"email": "twice@example.org", "categories": ["newsletter", "offers"]}
    assert server.request("POST", "/v1/subscriptions", body).status == 202
    with Session(clean_db) as session:
        mail = session.scalars(select(OutboxMessage)).one()
    url = server.base + urllib.parse.urlsplit(confirm_link(mail.body_text or "")).path
    visitors = [_browser() for _ in range(2)]
    forms = []
    for visitor in visitors:
        with visitor.open(url, timeout=10) as page:
            found = CSRF.search(page.read().decode())
        assert found is not None
        forms.append(urllib.parse.urlencode({"csrf_token": found.group(1)}).encode())

    def post(visitor: urllib.request.OpenerDirector, form: bytes) -> Answer:
        with visitor.open(url, form, timeout=10) as response:
            return Answer(response.status, response.read().decode())

    calls = [functools.partial(post, v, f) for v, f in zip(visitors, forms, strict=True)]
    answers = at_once(*calls)
    assert [a.status for a in answers] == [200, 200]
    with Session(clean_db) as session:
        confirmations = session.scalars(
            select(ConsentEvent.category).where(ConsentEvent.action == Action.CONFIRM)
        ).all()
        assert trail.verify(session).is_ok
    assert sorted(c or "" for c in confirmations) == ["", "newsletter", "offers"]


def _settings_of_the_config(**env: str) -> dict[str, object]:
    """gunicorn.conf.py's recycling settings, as gunicorn would read them under `env`."""
    script = (
        "import json, runpy; ns = runpy.run_path('gunicorn.conf.py');"
        "print(json.dumps({k: ns[k] for k in ('max_requests', 'max_requests_jitter')}))"
    )
    environ = {k: v for k, v in os.environ.items() if k != "GUNICORN_MAX_REQUESTS"} | env
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=environ, capture_output=True, check=True
    )
    return dict(json.loads(done.stdout))


def test_workers_are_recycled_rarely_and_the_setting_can_be_changed() -> None:
    assert _settings_of_the_config() == {"max_requests": 100_000, "max_requests_jitter": 10_000}
    never = _settings_of_the_config(GUNICORN_MAX_REQUESTS="0")
    assert never == {"max_requests": 0, "max_requests_jitter": 0}


def test_a_worker_is_replaced_after_its_max_requests(gunicorn: Callable[..., Gunicorn]) -> None:
    server = gunicorn(workers=1, GUNICORN_MAX_REQUESTS="3")
    seen = set()
    for _ in range(12):
        assert server.request("GET", "/healthz").status == 200
        deadline = time.monotonic() + 30
        while not server.worker_pids() and time.monotonic() < deadline:
            time.sleep(0.05)  # between a worker's exit and the next one's start
        seen.update(server.worker_pids())
    assert len(seen) >= 3
