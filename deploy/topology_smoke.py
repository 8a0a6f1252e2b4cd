"""The production topology without Docker, and a smoke test through it.

Starts, on 127.0.0.1: a one-off migration, two gunicorn instances of the service in production
mode behind nginx, two `consent-center worker`s, an SMTP server (aiosmtpd), and uses the
PostgreSQL and Redis already running there. Then, through the proxy only, it checks that:

- the evidence IP is the client's (the client connects from 127.0.0.2 and sends a spoofed
  X-Forwarded-For hop of its own; nginx appends what it saw, TRUSTED_PROXY_HOPS=1 believes
  only that);
- the per-IP limit is shared by both instances (Redis): 3 of 5 posts pass, not 3 per instance;
- each confirmation mail is delivered once, whichever worker picks it up;
- each scheduled job runs once although two workers run;
- every answer carries X-Request-ID, and /metrics answers.

Run it with `deploy/topology-smoke.sh` (which installs nginx if it is missing).
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import create_engine, make_url, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.smtp import Inbox, free_port, smtp_server  # noqa: E402

BIN = Path(sys.executable).parent
PG = os.environ.get("TOPOLOGY_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
REDIS = os.environ.get("TOPOLOGY_REDIS_URL", "redis://127.0.0.1:6379/0")
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
STARTED = time.monotonic()


def say(message: str) -> None:
    print(f"[{time.monotonic() - STARTED:5.1f}s] {message}", flush=True)


@contextmanager
def database() -> Iterator[str]:
    name = f"topology_{os.getpid()}"
    admin = create_engine(PG, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(PG).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextmanager
def process(
    command: list[str], env: dict[str, str], log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        started = subprocess.Popen(
            command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        yield started
    finally:
        if started.poll() is None:
            os.killpg(started.pid, signal.SIGTERM)
            try:
                started.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(started.pid, signal.SIGKILL)
                started.wait()


def nginx_conf(folder: Path, port: int, upstreams: list[int]) -> Path:
    servers = "\n".join(f"        server 127.0.0.1:{p};" for p in upstreams)
    conf = folder / "nginx.conf"
    conf.write_text(
        f"""
worker_processes 1;
pid {folder}/nginx.pid;
error_log {folder}/nginx-error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log {folder}/nginx-access.log;
    client_body_temp_path {folder}/body;
    proxy_temp_path {folder}/proxy;
    fastcgi_temp_path {folder}/fastcgi;
    uwsgi_temp_path {folder}/uwsgi;
    scgi_temp_path {folder}/scgi;
    upstream consent_center {{
{servers}
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://consent_center;
            proxy_set_header Host $http_host;
            # Appends the address nginx saw to whatever the client sent.
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
        }}
    }}
}}
"""
    )
    return conf


def wait_for(port: int, path: str = "/healthz", seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if request(port, "GET", path)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"nothing answered on 127.0.0.1:{port}{path}")


def request(
    port: int,
    method: str,
    path: str,
    *,
    source: str = "127.0.0.1",
    body: str | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], str]:
    connection = http.client.HTTPConnection(
        "127.0.0.1", port, timeout=10, source_address=(source, 0)
    )
    try:
        connection.request(method, path, body=body, headers=headers or {})
        answer = connection.getresponse()
        return answer.status, {k.lower(): v for k, v in answer.getheaders()}, answer.read().decode()
    finally:
        connection.close()


def subscribe(port: int, source: str, email: str, spoofed: str) -> tuple[int, str]:
    """The public form, as a browser behind `source` sends it, with a forged first hop."""
    forged = {"X-Forwarded-For": spoofed}
    status, headers, page = request(port, "GET", "/subscribe", source=source, headers=forged)
    assert status == 200, status
    found = CSRF.search(page)
    assert found, "no CSRF token on /subscribe"
    cookie = headers.get("set-cookie", "").split(";")[0]
    form = urlencode(
        {
            "csrf_token": found.group(1),
            "email": email,
            "categories": "newsletter",
            "notice_version": "2026-11-01",
            "website": "",
        }
    )
    status, headers, _ = request(
        port,
        "POST",
        "/subscribe",
        source=source,
        body=form,
        headers=forged | {"Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie},
    )
    return status, headers.get("x-request-id", "")


def main() -> int:
    with ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="topology-")))
        url = stack.enter_context(database())
        inbox, smtp_port = stack.enter_context(smtp_server(Inbox()))
        proxy_port, web_ports = free_port(), [free_port(), free_port()]
        key = folder / "keys" / "audit-signing-key.json"
        env = os.environ | {
            "PRODUCTION": "true",
            "DATABASE_URL": url,
            "SECRET_KEY": uuid.uuid4().hex * 2,
            "IDENTIFIER_HMAC_KEY": uuid.uuid4().hex * 2,
            "AUDIT_SIGNING_KEY_PATH": str(key),
            "INSTANCE_PATH": str(folder / "instance"),
            "BASE_URL": f"http://127.0.0.1:{proxy_port}",
            "SMTP_HOST": "127.0.0.1",
            "SMTP_PORT": str(smtp_port),
            "RATELIMIT_STORAGE_URL": REDIS,
            "RATELIMIT_KEY_PREFIX": f"topology-{os.getpid()}",
            "PUBLIC_FORM_RATE": "3/minute",
            "TRUSTED_PROXY_HOPS": "1",
            "METRICS_OPEN": "true",
            "CHECKPOINT_INTERVAL_MINUTES": "1",
            "GUNICORN_WORKERS": "2",
        }
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        cli = str(BIN / "consent-center")

        say("one-off steps: a signing key, then the migrations")
        subprocess.run(
            [cli, "audit", "new-key", str(key)], env=env, check=True, capture_output=True
        )
        subprocess.run([cli, "db", "upgrade"], env=env, check=True, capture_output=True)
        say("migrated; starting web, workers and nginx")

        for n, port in enumerate(web_ports):
            stack.enter_context(
                process(
                    [
                        str(BIN / "gunicorn"),
                        "-c",
                        str(ROOT / "gunicorn.conf.py"),
                        "app:create_app()",
                    ],
                    env | {"GUNICORN_BIND": f"127.0.0.1:{port}"},
                    folder / f"web-{n}.log",
                )
            )
        for n in range(2):
            stack.enter_context(
                process([cli, "worker", "--interval", "0.5"], env, folder / f"worker-{n}.log")
            )
        for port in web_ports:
            wait_for(port)
        conf = nginx_conf(folder, proxy_port, web_ports)
        stack.enter_context(
            process(
                [NGINX, "-p", str(folder), "-c", str(conf), "-g", "daemon off;"],
                env,
                folder / "nginx.log",
            )
        )
        wait_for(proxy_port)
        say(f"nginx :{proxy_port} -> gunicorn :{web_ports[0]} and :{web_ports[1]}, 2 workers")

        failures: list[str] = []

        def expect(ok: bool, what: str) -> None:
            say(("ok   " if ok else "FAIL ") + what)
            if not ok:
                failures.append(what)

        # Evidence: the client's address, not the proxy's, not the forged hop.
        first = [
            subscribe(proxy_port, "127.0.0.2", f"ip{n}@example.org", "6.6.6.6") for n in range(2)
        ]
        expect([s for s, _ in first] == [303, 303], "two opt-ins from 127.0.0.2 accepted")
        expect(all(len(rid) == 32 for _, rid in first), "each answer carries an X-Request-ID")
        # Limits: five posts from 127.0.0.3, spread over both instances by nginx.
        limited = [
            subscribe(proxy_port, "127.0.0.3", f"limit{n}@example.org", f"192.0.2.{n}")[0]
            for n in range(5)
        ]
        expect(limited == [303, 303, 303, 429, 429], f"limit shared by both instances {limited}")

        engine = create_engine(url)
        stack.callback(engine.dispose)
        with engine.connect() as connection:
            ips = set(connection.scalars(text("SELECT DISTINCT ip FROM evidence")))
        expect(ips == {"127.0.0.2", "127.0.0.3"}, f"evidence IPs are the clients' {sorted(ips)}")

        # Mail: five accepted opt-ins, five confirmation mails, each delivered once.
        deadline = time.monotonic() + 20
        while len(inbox.messages) < 5 and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(2)  # a second delivery would show up now
        recipients = Counter(str(m["To"]) for m in inbox.messages)
        expect(
            len(recipients) == 5 and set(recipients.values()) == {1},
            f"each mail delivered once {dict(recipients)}",
        )

        # Jobs: both workers wake every 0.5 s; each job ran once.
        deadline = time.monotonic() + 15
        runs: dict[str, Any] = {}
        while time.monotonic() < deadline:
            with engine.connect() as connection:
                runs = dict(connection.execute(text("SELECT name, claimed_by FROM job_runs")).all())
            if len(runs) == 3:
                break
            time.sleep(0.5)
        with engine.connect() as connection:
            retention = connection.scalar(
                text("SELECT count(*) FROM consent_events WHERE action = 'retention_run'")
            )
        expect(
            sorted(runs) == ["checkpoint", "retention", "rights_overdue"] and retention == 1,
            f"each job ran once: {runs}, retention runs {retention}",
        )

        status, headers, body = request(proxy_port, "GET", "/metrics")
        expect(
            status == 200
            and bool(headers.get("x-request-id"))
            and "consent_center_request_duration_seconds_count" in body
            and "consent_center_chain_head_seq" in body,
            "GET /metrics through the proxy (workers added up, state gauges)",
        )
        say(json.dumps({"passed": not failures, "failures": failures}))
        if failures:
            for log in sorted(folder.glob("*.log")):
                print(f"--- {log.name}\n{log.read_text(errors='replace')[-3000:]}", flush=True)
        return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
