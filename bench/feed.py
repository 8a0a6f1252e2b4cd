"""Benchmark the changes feed and webhook deliveries (issue 15), on 127.0.0.1 only.

Feed: a ledger of --events events (seeded by bench.seed, about 2.1 per subject) is paged
1,000 changes at a time from the start, the middle and the end: by the plain SQL of one page
(psycopg, the database's own speed), by the service function, and over HTTP through gunicorn
beside the bare-Flask endpoint of the same shape. Webhooks: --receivers local receivers
(one HTTP server each) get every change of --changes changes recorded through the real
preferences use case, sent by --workers `consent-center worker` processes; each receiver
counts what it got by webhook-id, so a repeat or a loss shows.

    python -m bench.feed --database-url postgresql+psycopg://postgres@127.0.0.1:5432/DB
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session

from bench import seed
from bench.run import HOST, RESULTS, Database, request, serving

PAGE = 1000


def _starts(last_seq: int) -> list[tuple[str, int]]:
    return [("start", 0), ("middle", last_seq // 2), ("end", max(last_seq - 50 * PAGE, 0))]


def _pages(read: Any, start: int, seconds: float) -> dict[str, Any]:
    """Read pages from `start` for `seconds`; `read(after)` returns (count, next_after)."""
    after, changes, pages, slowest = start, 0, 0, 0.0
    began = time.perf_counter()
    while time.perf_counter() - began < seconds:
        t = time.perf_counter()
        count, after = read(after)
        slowest = max(slowest, time.perf_counter() - t)
        if not count:
            after = start
            continue
        changes, pages = changes + count, pages + 1
    elapsed = time.perf_counter() - began
    return {
        "changes": changes,
        "changes_per_s": round(changes / elapsed),
        "pages": pages,
        "slowest_page_ms": round(slowest * 1000, 1),
    }


def _events_in(engine: Engine) -> int:
    with Session(engine) as session:
        try:
            return int(session.scalar(text("SELECT count(*) FROM consent_events")) or 0)
        except Exception:  # no schema yet
            return 0


def feed_figures(url: str, events: int, seconds: float, port: int) -> list[dict[str, Any]]:
    from app.database import make_engine
    from app.services.changes import feed

    engine = make_engine(url)
    if _events_in(engine) < events:  # about 2.1 events a subject: reseed only when short
        seed.ensure(url, -(-events * 10 // 21), RESULTS / "instance", force=True)
    rows: list[dict[str, Any]] = []
    with Session(engine) as session:
        last = int(session.scalar(text("SELECT max(seq) FROM consent_events")) or 0)
        total = int(session.scalar(text("SELECT count(*) FROM consent_events")) or 0)
        query = feed._events().where(feed.EVENTS.c.seq > 0).order_by(feed.EVENTS.c.seq)
        compiled = str(query.limit(PAGE).compile(engine, compile_kwargs={"literal_binds": True}))
        if engine.dialect.name == "postgresql":
            plan = session.execute(
                text("EXPLAIN " + compiled.replace("seq > 0", f"seq > {last // 2}"))
            ).scalars()
            rows.append({"measure": "feed plan (middle page)", "plan": list(plan)})
        session.rollback()
        raw_sql = compiled.replace("seq > 0", "seq > :after")

        def by_sql(after: int) -> tuple[int, int]:
            found = session.execute(text(raw_sql), {"after": after}).all()
            return len(found), (found[-1][0] if found else after)

        def by_service(after: int) -> tuple[int, int]:
            items, next_after = feed.page(session, after, PAGE)
            return len(items), int(next_after)

        for name, start in _starts(last):
            rows.append(
                {
                    "measure": f"feed from the {name}",
                    "events": total,
                    "sql": _pages(by_sql, start, seconds / 3),
                    "service": _pages(by_service, start, seconds / 3),
                }
            )
            session.rollback()
        rows.append(_stages(session, last // 2))
    engine.dispose()

    with serving(None, port) as bare, _service(url, port + 1) as service:
        token = _token(url, service.port)
        headers = {"Authorization": f"Bearer {token}"}

        def over_http(server_port: int) -> Any:
            def read(after: int) -> tuple[int, int]:
                status, body = request(
                    "GET", server_port, f"/v1/changes?after={after}&limit={PAGE}", None, headers
                )
                if status != 200:
                    raise RuntimeError(f"feed answered {status}: {body[:200]!r}")
                page = json.loads(body)
                return len(page["changes"]), int(page["next_after"])

            return read

        for server in (service, bare):  # every fresh worker compiles and prepares first
            for _ in range(4 * len(server.workers())):
                over_http(server.port)(last // 3)
        for name, start in _starts(last):
            got = _on_cpu(service, over_http(service.port), start, seconds / 3)
            base = _on_cpu(bare, over_http(bare.port), start, seconds / 3)
            rows.append(
                {
                    "measure": f"feed over HTTP from the {name}",
                    "events": total,
                    "service": got,
                    "bare": base,
                    "ratio": round(got["changes_per_s"] / base["changes_per_s"], 2),
                }
            )
    return rows


def _stages(session: Session, after: int, pages: int = 30) -> dict[str, Any]:
    """The CPU this process spends on each stage of one page from the middle (process_time,
    so the other sessions' load counts less), as changes per CPU-second."""
    from app.domain.changes import change_items, identifiers_by_subject
    from app.services.changes import feed

    params = {"after": after, "limit": PAGE}
    events = session.execute(feed._PAGE, params).all()
    found = session.execute(feed._PAGE_IDENTIFIERS, params).all()
    items = change_items(events, identifiers_by_subject(found))
    body = {"changes": items, "next_after": items[-1]["cursor"]}
    stages = {
        "events read": lambda: session.execute(feed._PAGE, params).all(),
        "identifiers read": lambda: session.execute(feed._PAGE_IDENTIFIERS, params).all(),
        "items built": lambda: change_items(events, identifiers_by_subject(found)),
        "JSON, orjson": lambda: orjson.dumps(body),
        "JSON, json.dumps (before)": lambda: json.dumps(
            body, separators=(",", ":"), ensure_ascii=False
        ).encode(),
        "feed.page in all": lambda: feed.page(session, after, PAGE),
    }
    figures: dict[str, Any] = {"measure": "feed stages, CPU of one middle page"}
    for name, stage in stages.items():
        began = time.process_time()
        for _ in range(pages):
            stage()
        spent = (time.process_time() - began) / pages
        figures[name] = {"cpu_ms": round(spent * 1000, 2), "changes_per_cpu_s": round(PAGE / spent)}
    session.rollback()
    return figures


def _on_cpu(server: Any, read: Any, start: int, seconds: float) -> dict[str, Any]:
    """`_pages` over HTTP, and the changes per CPU-second the server's gunicorn workers spent
    (their user and system time from /proc, which the other sessions' load inflates less than
    the wall clock)."""

    def spent() -> float:
        ticks = 0
        for pid in server.workers():
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
        return ticks / os.sysconf("SC_CLK_TCK")

    before = spent()
    figures = _pages(read, start, seconds)
    cpu = spent() - before
    figures["changes_per_server_cpu_s"] = round(figures["changes"] / cpu) if cpu else None
    return figures


@contextmanager
def _service(url: str, port: int) -> Iterator[Any]:
    from bench.run import Server, service_env

    env = service_env(Database("postgresql", 10_000)) | {"DATABASE_URL": url}
    server = Server("app:create_app()", port, env)
    try:
        yield server
    finally:
        server.stop()


def _token(url: str, port: int) -> str:
    """A client holding consent:read, made in the database, and its bearer token."""
    from app.database import make_engine
    from app.services import clients

    engine = make_engine(url)
    with Session(engine) as session:
        made = clients.create(session, "bench-feed", ["consent:read"], iterations=1000)
    engine.dispose()
    form = f"grant_type=client_credentials&client_id={made.client_id}"
    form += f"&client_secret={made.client_secret}"
    content = {"Content-Type": "application/x-www-form-urlencoded"}
    status, raw = request("POST", port, "/oauth/token", form.encode(), content)
    if status != 200:
        raise RuntimeError(f"token endpoint answered {status}: {raw!r}")
    return str(json.loads(raw)["access_token"])


# --- webhooks ------------------------------------------------------------------------------


class Counting(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    counts: Counter[str]
    order: list[int]
    times: list[float]
    lock: threading.Lock

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        cursor = int(json.loads(raw)["data"]["cursor"])
        with self.lock:
            self.counts[self.headers["webhook-id"]] += 1
            self.order.append(cursor)
            self.times.append(time.perf_counter())
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _receiver() -> tuple[ThreadingHTTPServer, type[Counting]]:
    handler = type(
        "Receiver",
        (Counting,),
        {"counts": Counter(), "order": [], "times": [], "lock": threading.Lock()},
    )
    server = ThreadingHTTPServer((HOST, 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, handler


def _worker(url: str, instance: Path) -> subprocess.Popen[bytes]:
    env = os.environ | {
        "DATABASE_URL": url,
        "SECRET_KEY": seed.SECRET_KEY,
        "IDENTIFIER_HMAC_KEY": seed.IDENTIFIER_KEY.decode(),
        "INSTANCE_PATH": str(instance),
        "WEBHOOK_ALLOW_PRIVATE": "true",
    }
    return subprocess.Popen(
        [
            str(Path(sys.executable).parent / "consent-center"),
            "worker",
            "--interval",
            "0.1",
            "--no-jobs",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=(RESULTS / "logs" / "webhook-worker.log").open("ab"),
    )


def webhook_figures(url: str, changes: int, receivers: int, workers: int) -> dict[str, Any]:
    from app.database import make_engine
    from app.domain.consent import channel_topic
    from app.domain.vocabulary import Method, Status
    from app.models import WebhookDelivery
    from app.services.consent import ledger, preferences
    from app.services.delivery import webhooks

    instance = RESULTS / "instance"
    settings = seed.bench_settings(url, instance)
    seed.reset(settings)
    engine: Engine = make_engine(url)
    subjects = changes // 2
    seed.seed(engine, seed.IDENTIFIER_KEY, subjects)
    servers = [_receiver() for _ in range(receivers)]
    rules = _rules(settings)
    act = ledger.Act(actor="bench", method=Method.API, source="bench")
    with Session(engine) as session:
        for server, _ in servers:
            webhooks.register(
                session,
                f"http://{HOST}:{server.server_address[1]}/hooks",
                ["consent.changed"],
                actor="bench",
                allow_private=True,
            )
        for i in range(subjects):  # a withdrawal and a grant each, through the use case
            subject_id = seed.subject_id_for(i)
            for status in (Status.WITHDRAWN, Status.GRANTED):
                change = [preferences.Change(channel_topic("email"), status)]
                preferences.change(session, rules, subject_id, change, act)
        queued = int(session.scalar(select(func.count()).select_from(WebhookDelivery)) or 0)
    expected = queued
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(text("ANALYZE"))
    started = time.perf_counter()
    processes = [_worker(url, instance) for _ in range(workers)]
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            got = sum(sum(h.counts.values()) for _, h in servers)
            if got >= expected:
                break
            time.sleep(0.05)
        elapsed = time.perf_counter() - started
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            process.wait(30)
        for server, _ in servers:
            server.shutdown()
    engine.dispose()
    received = sum(sum(h.counts.values()) for _, h in servers)
    unique = sum(len(h.counts) for _, h in servers)
    repeats = sum(c - 1 for _, h in servers for c in h.counts.values() if c > 1)
    in_order = all(h.order == sorted(h.order) for _, h in servers)
    times = sorted(t for _, h in servers for t in h.times)
    sending = times[-1] - times[0] if len(times) > 1 else elapsed
    return {
        "measure": f"webhook deliveries, {receivers} receivers, {workers} workers",
        "changes": changes,
        "deliveries_queued": expected,
        "received": received,
        "distinct_webhook_ids": unique,
        "repeats": repeats,
        "in_order_per_receiver": in_order,
        "seconds_from_start": round(elapsed, 2),
        "seconds_first_to_last": round(sending, 2),
        "deliveries_per_s": round(received / sending),
    }


def _rules(settings: Any) -> Any:
    from app.components import build

    return build(settings).rules


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True, help="the feed's 1M-event ledger")
    parser.add_argument("--hooks-database-url", help="a scratch database (reset!) for webhooks")
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=9)
    parser.add_argument("--changes", type=int, default=2000)
    parser.add_argument("--receivers", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--skip-feed", action="store_true")
    parser.add_argument("--port", type=int, default=18_600, help="bare Flask; the service +1")
    args = parser.parse_args()
    (RESULTS / "logs").mkdir(parents=True, exist_ok=True)
    rows = []
    if not args.skip_feed:
        rows = feed_figures(args.database_url, args.events, args.seconds, args.port)
    if args.hooks_database_url:
        for receivers in sorted({1, args.receivers}):
            rows.append(
                webhook_figures(args.hooks_database_url, args.changes, receivers, args.workers)
            )
    for row in rows:
        print(json.dumps(row), flush=True)
    (RESULTS / "feed.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
