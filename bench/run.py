"""Run the benchmarks: the service and a bare Flask app under the same gunicorn settings.

Everything binds and loads 127.0.0.1 only, and every load is bounded in time. Each figure is
measured next to the bare-Flask one in the same run and printed as a ratio.

    python -m bench.run                  # 10k subjects, SQLite and PostgreSQL (~5 minutes)
    python -m bench.run --with-1m        # adds 1M subjects (seeds once, ~15 minutes in all)
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy import event, select
from sqlalchemy.orm import Session

from bench import seed

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
DATA = RESULTS / "data"
HOST = "127.0.0.1"  # the only address any load goes to
PG_BASE = os.environ.get("BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/")
PG_NAME = os.environ.get("BENCH_PG_DB", "cc_bench")  # the databases' name (created beforehand)
QUESTION = "channel=email&category=newsletter"
WRK_SCRIPT = Path(__file__).resolve().parent / "check.lua"
WRK_WRITES = Path(__file__).resolve().parent / "writes.lua"
RECYCLE_EVERY = 2_000  # requests a worker serves before gunicorn replaces it, in `recycling`


@dataclass(frozen=True)
class Database:
    kind: str  # sqlite | postgresql
    subjects: int

    @property
    def url(self) -> str:
        label = _label(self.subjects)
        if self.kind == "sqlite":
            return f"sqlite:///{DATA / f'sqlite-{label}.db'}"
        return f"{PG_BASE}{PG_NAME}" + ("" if self.subjects == 10_000 else f"_{label}")


def _label(subjects: int) -> str:
    return f"{subjects // 1_000_000}m" if subjects >= 1_000_000 else f"{subjects // 1000}k"


# --- servers ---------------------------------------------------------------------------------


class Server:
    """One gunicorn master on 127.0.0.1:port with the project's gunicorn.conf.py."""

    def __init__(self, target: str, port: int, env: dict[str, str], root: Path = ROOT) -> None:
        """`root`: the checkout whose code and gunicorn.conf.py it serves (this one)."""
        self.port = port
        self.log_path = RESULTS / "logs" / f"{target.split(':')[0]}-{port}.log"
        log = self.log_path.open("w")
        self.process = subprocess.Popen(
            [str(Path(sys.executable).parent / "gunicorn"), "-c", "gunicorn.conf.py", target],
            cwd=root,
            env=os.environ | env | {"GUNICORN_BIND": f"{HOST}:{port}"},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if request("GET", port, "/healthz")[0] == 200:
                    return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"{target} did not start on port {port}")

    def boots(self) -> int:
        """How many workers gunicorn has started (recycled ones included)."""
        return self.log_path.read_text().count("Booting worker")

    def workers(self) -> list[int]:
        path = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return [int(p) for p in path.read_text().split()]

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def service_env(database: Database) -> dict[str, str]:
    return {
        "DATABASE_URL": database.url,
        "SECRET_KEY": seed.SECRET_KEY,
        "IDENTIFIER_HMAC_KEY": seed.IDENTIFIER_KEY.decode(),
        "INSTANCE_PATH": str(RESULTS / "instance"),
        "GUNICORN_ACCESS_LOG": "/dev/null",
        # Counted as deployed, never refused: one client sends more than the default
        # 6,000/minute through the parts of one run (a 429 would end the batch part).
        "API_RATE_LIMIT": "10000000/minute",
    } | (  # where the rate limits count (default: the service's database)
        {"RATELIMIT_STORAGE_URL": os.environ["BENCH_RATELIMIT_STORAGE_URL"]}
        if os.environ.get("BENCH_RATELIMIT_STORAGE_URL")
        else {}
    )


@contextmanager
def serving(
    database: Database | None, port: int, extra: dict[str, str] | None = None
) -> Iterator[Server]:
    if database is None:
        env = {"GUNICORN_ACCESS_LOG": "/dev/null"} | (extra or {})
        server = Server("bench.bare_app:app", port, env)
    else:
        server = Server("app:create_app()", port, service_env(database) | (extra or {}))
    try:
        yield server
    finally:
        server.stop()


def request(
    method: str,
    port: int,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    connection: http.client.HTTPConnection | None = None,
) -> tuple[int, bytes]:
    own = connection or http.client.HTTPConnection(HOST, port, timeout=60)
    try:
        own.request(method, path, body=body, headers=headers or {})
        response = own.getresponse()
        return response.status, response.read()
    finally:
        if connection is None:
            own.close()


def token_for(database: Database, port: int) -> str:
    """A client with every scope, created straight in the database, and its bearer token."""
    from app.database import make_engine
    from app.domain.vocabulary import ALL_SCOPES
    from app.services import clients

    engine = make_engine(database.url)
    with Session(engine) as session:
        credentials = clients.create(session, "bench", sorted(ALL_SCOPES), iterations=1000)
    engine.dispose()
    body = (
        f"grant_type=client_credentials&client_id={credentials.client_id}"
        f"&client_secret={credentials.client_secret}"
    ).encode()
    status, raw = request(
        "POST",
        port,
        "/oauth/token",
        body,
        {"Content-Type": "application/x-www-form-urlencoded"},
    )
    if status != 200:
        raise RuntimeError(f"token endpoint answered {status}: {raw!r}")
    return str(json.loads(raw)["access_token"])


# --- load ------------------------------------------------------------------------------------


def wrk(
    port: int,
    connections: int,
    seconds: float,
    subjects: int,
    token: str,
    script: Path = WRK_SCRIPT,
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """wrk against GET /v1/consent/check, a random seeded email per request (or `script`)."""
    result = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{round(seconds)}s",
            "--timeout",
            "5s",
            "-s",
            str(script),
            f"http://{HOST}:{port}",
        ],
        env=os.environ | {"BENCH_TOKEN": token, "BENCH_SUBJECTS": str(subjects)} | (env or {}),
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=True,
    )
    line = [x for x in result.stdout.splitlines() if x.startswith("{")][-1]
    raw = json.loads(line)
    return {
        "rps": raw["requests"] / (raw["duration_us"] / 1e6),
        "seconds": raw["duration_us"] / 1e6,
        "p50_ms": raw["p50_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000,
        "requests": raw["requests"],
        "errors": raw["errors"] + raw["non2xx"],
    }


def batch_latencies(
    port: int, token: str, size: int, subjects: int, repeats: int
) -> dict[str, Any]:
    rng = random.Random(size)
    latencies = []
    connection = http.client.HTTPConnection(HOST, port, timeout=60)
    for _ in range(repeats):
        emails = [
            seed.email_for(rng.randrange(subjects)) if rng.random() < 0.99 else "x@nowhere.example"
            for _ in range(size)
        ]
        body = json.dumps({"channel": "email", "category": "newsletter", "emails": emails})
        started = time.perf_counter()
        status, raw = request(
            "POST",
            port,
            "/v1/consent/check",
            body.encode(),
            {"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            connection,
        )
        latencies.append((time.perf_counter() - started) * 1000)
        if status != 200 or len(json.loads(raw)["results"]) != size:
            raise RuntimeError(f"batch answered {status}: {raw[:200]!r}")
        connection.close()
    return {
        "p50_ms": statistics.median(latencies),
        "max_ms": max(latencies),
        "min_ms": min(latencies),
        "repeats": repeats,
    }


def writers(
    port: int,
    token: str,
    subjects: int,
    threads: int,
    seconds: float,
    current: dict[int, str] | None = None,
) -> dict[str, Any]:
    """`threads` clients PATCHing preferences, each flipping the newsletter of its own subjects,
    so that every request writes (`current`: the standing newsletter status by subject)."""
    stop_at = time.monotonic() + seconds
    counts = [0] * threads
    failures = [0] * threads
    latencies: list[list[float]] = [[] for _ in range(threads)]

    def work(index: int) -> None:
        rng = random.Random(index)
        status_of: dict[int, str] = dict(current or {})
        while time.monotonic() < stop_at:
            i = rng.randrange(index, subjects, threads)
            standing = status_of.get(i, seed.expected_reason(i))
            wanted = "withdrawn" if standing == "granted" else "granted"
            body = {"changes": [{"channel": "email", "category": "newsletter", "status": wanted}]}
            started = time.perf_counter()
            status, _ = request(
                "PATCH",
                port,
                f"/v1/subjects/{seed.subject_id_for(i)}/preferences",
                json.dumps(body).encode(),
                {"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            )
            latencies[index].append((time.perf_counter() - started) * 1000)
            if status == 200:
                counts[index] += 1
                status_of[i] = wanted
            else:
                failures[index] += 1

    started = time.perf_counter()
    pool = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    elapsed = time.perf_counter() - started
    every = sorted(x for per in latencies for x in per)
    return {
        "requests": sum(counts),
        "failures": sum(failures),
        "seconds": elapsed,
        "rps": sum(counts) / elapsed,
        "p50_ms": every[len(every) // 2] if every else None,
        "p99_ms": every[int(len(every) * 0.99)] if every else None,
    }


def export(server: Server, token: str, path: str) -> dict[str, Any]:
    """Stream the whole export; count its lines; the worker's peak RSS from /proc."""
    before = {pid: _vm(pid, "VmHWM") for pid in server.workers()}
    connection = http.client.HTTPConnection(HOST, server.port, timeout=120)
    started = time.perf_counter()
    connection.request("GET", path, headers={"Authorization": f"Bearer {token}"})
    response = connection.getresponse()
    lines, size, tail = 0, 0, b""
    while chunk := response.read(1 << 16):
        lines += chunk.count(b"\n")
        size += len(chunk)
        tail = chunk[-300:]
    elapsed = time.perf_counter() - started
    connection.close()
    if response.status != 200:
        raise RuntimeError(f"export answered {response.status}: {tail!r}")
    after = {pid: _vm(pid, "VmHWM") for pid in server.workers()}
    grown = max(after, key=lambda pid: after[pid] - before.get(pid, after[pid]))
    return {
        "events": lines,
        "seconds": elapsed,
        "events_per_s": lines / elapsed,
        "megabytes": size / 1e6,
        "peak_rss_mb": after[grown] / 1024,
        "rss_before_mb": before.get(grown, after[grown]) / 1024,
    }


def _vm(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def lock_hold(database: Database, changes: int) -> dict[str, Any]:
    """How long one write holds the chain lock: from ledger.lock() (or lock_and_read(), which
    brings the read under the lock with it) returning to the commit.

    Measured in this process through the real service function, one writer after another.
    """
    from app.database import make_engine
    from app.domain.catalog import load_catalog
    from app.domain.consent import pair_topic
    from app.domain.rules import Rules
    from app.domain.vocabulary import Method, Status
    from app.models import ChainHead
    from app.services.consent import ledger, preferences

    engine = make_engine(database.url)
    settings = seed.bench_settings(database.url, RESULTS / "instance")
    rules = Rules(catalog=load_catalog(settings.catalog_path), identifier_key=seed.IDENTIFIER_KEY)
    holds: list[float] = []
    totals: list[float] = []
    real_lock, real_lock_and_read = ledger.lock, ledger.lock_and_read
    locked_at = [0.0]

    def timed_lock(session: Session, chain_id: str = ledger.CHAIN_ID) -> ChainHead:
        head = real_lock(session, chain_id)
        locked_at[0] = time.perf_counter()
        return head

    def timed_lock_and_read(session: Session, *args: Any) -> Any:
        found = real_lock_and_read(session, *args)
        locked_at[0] = time.perf_counter()  # the lock and its read came back together
        return found

    statements = [0]
    inside: list[int] = []

    def count(*_args: Any) -> None:
        statements[0] += 1

    event.listen(engine, "before_cursor_execute", count)
    ledger.lock, ledger.lock_and_read = timed_lock, timed_lock_and_read
    try:
        rng = random.Random(7)
        for _n in range(changes):
            i = rng.randrange(database.subjects)
            commits: list[float] = []
            with Session(engine) as session:
                # the opposite of what stands, so that every measured call writes an event
                topic = pair_topic("email", "newsletter")
                was = ledger.standings(session, seed.subject_id_for(i), [topic]).get(topic)
                session.rollback()
                granted = was is not None and was.status is Status.GRANTED
                status = Status.WITHDRAWN if granted else Status.GRANTED
                event.listen(session, "after_commit", partial(_stamp, commits))
                real_locked = statements[0]
                started = time.perf_counter()
                preferences.change(
                    session,
                    rules,
                    seed.subject_id_for(i),
                    [preferences.Change(pair_topic("email", "newsletter"), status)],
                    ledger.Act(actor="bench:lock", method=Method.API),
                )
                totals.append((time.perf_counter() - started) * 1000)
                holds.append((commits[0] - locked_at[0]) * 1000)
                inside.append(statements[0] - real_locked)
    finally:
        ledger.lock, ledger.lock_and_read = real_lock, real_lock_and_read
        engine.dispose()
    return {
        "changes": changes,
        "hold_p50_ms": statistics.median(holds),
        "hold_mean_ms": statistics.fmean(holds),
        "service_call_p50_ms": statistics.median(totals),
        # the statements one write sends, the lock's included (COMMIT is not one)
        "statements_per_write": statistics.median(inside),
        "max_serial_writes_per_s": 1000 / statistics.fmean(holds),
    }


def _stamp(into: list[float], _session: Session) -> None:
    into.append(time.perf_counter())


def verify(database: Database) -> dict[str, Any]:
    from app.database import make_engine
    from app.services.audit import trail

    engine = make_engine(database.url)
    started = time.perf_counter()
    with Session(engine) as session:
        result = trail.verify(session)
    engine.dispose()
    return {
        "ok": result.is_ok,
        "events_checked": result.events_checked,
        "seconds": time.perf_counter() - started,
        "problem": result.problem,
    }


# --- the run ---------------------------------------------------------------------------------


def _compared(
    measure: str, database: Database, connections: int, got: dict[str, Any], base: dict[str, Any]
) -> dict[str, Any]:
    """A row of wrk's figures for the service and its baseline in the same run."""
    return {
        "measure": measure,
        "db": database.kind,
        "subjects": database.subjects,
        "connections": connections,
        "service": got,
        "bare": base,
        "ratio": got["rps"] / base["rps"],
    }


class Run:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.rows: list[dict[str, Any]] = []
        self.port = int(os.environ.get("BENCH_PORT", "18400"))  # the first port minus one

    def next_port(self) -> int:
        self.port += 1
        return self.port

    def add(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        print(json.dumps(row), flush=True)
        (RESULTS / "partial.json").write_text(json.dumps(self.rows, indent=2))

    def attempt(
        self, part: Callable[[Database], None] | Callable[[None], None], database: Database | None
    ) -> None:
        """Run one part; a failure is reported and the run goes on to the next."""
        try:
            part(database)
        except Exception as error:  # a bench run reports every part it can
            print(f"!! {part.__name__} on {database} failed: {error!r}", flush=True)

    def checks(self, database: Database) -> None:
        with (
            serving(None, self.next_port()) as bare,
            serving(database, self.next_port()) as service,
            serving(database, self.next_port(), {"FAST_CHECK": "false"}) as flask_path,
        ):
            token = token_for(database, service.port)
            for connections in (1, 32):
                base = wrk(bare.port, connections, self.seconds, database.subjects, token)
                got = wrk(service.port, connections, self.seconds, database.subjects, token)
                self.add(_compared("check", database, connections, got, base))
            # The same service without the fast check (FAST_CHECK=false), in the same run.
            base = wrk(bare.port, 32, self.seconds, database.subjects, token)
            got = wrk(flask_path.port, 32, self.seconds, database.subjects, token)
            self.add(_compared("check, Flask path", database, 32, got, base))
            self.batches(database, bare, service, token)

    def recycling(self, database: Database) -> None:
        """The check with workers recycled every RECYCLE_EVERY requests (what gunicorn's
        `max_requests` of 10,000 did at production rates, every 40 s a worker) against the same
        service with the project's setting, in one run: what a worker's start costs."""
        often = {"GUNICORN_MAX_REQUESTS": str(RECYCLE_EVERY)}
        with (
            serving(database, self.next_port()) as kept,
            serving(database, self.next_port(), often) as recycled,
        ):
            token = token_for(database, kept.port)
            seconds = self.seconds * 3  # long enough for every worker to be recycled
            started = recycled.boots()
            base = wrk(kept.port, 32, seconds, database.subjects, token)
            got = wrk(recycled.port, 32, seconds, database.subjects, token)
            measure = f"check, workers recycled every {RECYCLE_EVERY:,} requests"
            row = _compared(measure, database, 32, got, base)
            self.add(row | {"restarts": recycled.boots() - started})

    def batch(self, database: Database) -> None:
        """The batch check alone (`--only batch`)."""
        with (
            serving(None, self.next_port()) as bare,
            serving(database, self.next_port()) as service,
        ):
            self.batches(database, bare, service, token_for(database, service.port))

    def batches(self, database: Database, bare: Server, service: Server, token: str) -> None:
        for size, repeats in ((1000, 20), (10_000, 10)):
            base = batch_latencies(bare.port, token, size, database.subjects, repeats)
            got = batch_latencies(service.port, token, size, database.subjects, repeats)
            self.add(
                {
                    "measure": f"batch {size:,}",
                    "db": database.kind,
                    "subjects": database.subjects,
                    "service": got,
                    "bare": base,
                    "ratio": base["p50_ms"] / got["p50_ms"],
                }
            )

    def logs(self, _database: Database | None = None) -> None:
        """The bare app with gunicorn's plain access log against the same app with the
        project's redacting one: the log's own cost, in one run."""
        plain = {"GUNICORN_LOGGER_CLASS": "gunicorn.glogging.Logger"}
        with (
            serving(None, self.next_port(), plain) as bare,
            serving(None, self.next_port()) as redacting,
        ):
            base = wrk(bare.port, 32, self.seconds, 10_000, "-")
            got = wrk(redacting.port, 32, self.seconds, 10_000, "-")
            base_again = wrk(bare.port, 32, self.seconds, 10_000, "-")
        base = max(base, base_again, key=lambda figures: figures["rps"])
        self.add(
            {
                "measure": "access log",
                "db": "-",
                "subjects": 0,
                "connections": 32,
                "service": got,
                "bare": base,
                "ratio": got["rps"] / base["rps"],
            }
        )

    def writes(self, database: Database, threads: int = 16) -> None:
        from app.database import make_engine
        from app.models import ChainHead, ConsentState

        engine = make_engine(database.url)

        def head_seq() -> int:
            with Session(engine) as session:
                return int(session.scalars(select(ChainHead.last_seq)).one())

        def standings() -> dict[int, str]:
            with Session(engine) as session:
                return {
                    int(subject_id.rsplit("-", 1)[1], 16): status
                    for subject_id, status in session.execute(
                        select(ConsentState.subject_id, ConsentState.status).where(
                            ConsentState.channel == "email", ConsentState.category == "newsletter"
                        )
                    )
                }

        with (
            serving(None, self.next_port()) as bare,
            serving(database, self.next_port()) as service,
        ):
            token = token_for(database, service.port)
            base = writers(bare.port, token, database.subjects, threads, self.seconds)
            first = head_seq()
            got = writers(
                service.port, token, database.subjects, threads, self.seconds, standings()
            )
            got["events"] = head_seq() - first
            got["events_per_s"] = got["events"] / got["seconds"]
            # The same 16 writers from wrk: the load's own CPU (Python threads above) is no
            # longer most of what shares the two cores with the service.
            now = standings()
            path = RESULTS / "standings.txt"
            path.write_text(
                "".join(
                    f"{now.get(i, seed.expected_reason(i))}\n" for i in range(database.subjects)
                )
            )
            env = {"BENCH_STANDINGS": str(path)}
            wrk_base = wrk(
                bare.port, threads, self.seconds, database.subjects, token, WRK_WRITES, env
            )
            first = head_seq()
            wrk_got = wrk(
                service.port, threads, self.seconds, database.subjects, token, WRK_WRITES, env
            )
            wrk_got["events"] = head_seq() - first
            wrk_got["events_per_s"] = wrk_got["events"] / wrk_got["seconds"]
        engine.dispose()
        verified = verify(database)
        for measure, sent_by, service_got, bare_got, lock in (
            ("writes", "Python threads", got, base, lock_hold(database, 200)),
            ("writes, wrk", "wrk", wrk_got, wrk_base, None),
        ):
            self.add(
                {
                    "measure": measure,
                    "db": database.kind,
                    "subjects": database.subjects,
                    "writers": threads,
                    "sent_by": sent_by,
                    "service": service_got,
                    "bare": bare_got,
                    "ratio": service_got["rps"] / bare_got["rps"],
                    "lock": lock,
                    "verify": verified,
                }
            )

    def export(self, database: Database) -> None:
        # A sync worker is killed after GUNICORN_TIMEOUT (30 s) even while it streams.
        slow = {"GUNICORN_TIMEOUT": "900"}
        with (
            serving(None, self.next_port(), slow) as bare,
            serving(database, self.next_port(), slow) as service,
        ):
            token = token_for(database, service.port)
            got = export(service, token, "/v1/audit/export")
            base = export(bare, token, f"/v1/audit/export?count={got['events']}")
        self.add(
            {
                "measure": "export",
                "db": database.kind,
                "subjects": database.subjects,
                "service": got,
                "bare": base,
                "ratio": got["events_per_s"] / base["events_per_s"],
            }
        )


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| measure | db | subjects | load | service | bare Flask | service/bare |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        s, b = row["service"], row["bare"]
        measure = row["measure"]
        if measure.startswith("check") or measure == "access log":
            load = f"{row['connections']} conn"
            got = f"{s['rps']:,.0f} req/s, p50 {s['p50_ms']:.1f} ms, p99 {s['p99_ms']:.1f} ms"
            base = f"{b['rps']:,.0f} req/s, p50 {b['p50_ms']:.1f} ms, p99 {b['p99_ms']:.1f} ms"
            ratio = f"{row['ratio']:.0%} of req/s"
        elif measure.startswith("batch"):
            load = "1 conn"
            got = f"p50 {s['p50_ms']:.0f} ms, max {s['max_ms']:.0f} ms"
            base = f"p50 {b['p50_ms']:.0f} ms, max {b['max_ms']:.0f} ms"
            ratio = f"{row['ratio']:.0%} of speed"
        elif measure.startswith("writes"):
            load = f"{row['writers']} writers"
            lock = row["lock"]
            held = f"lock held p50 {lock['hold_p50_ms']:.1f} ms; " if lock else ""
            got = (
                f"{s['events_per_s']:,.0f} events/s ({s['rps']:,.0f} req/s, p99 "
                f"{s['p99_ms']:.0f} ms); {held}"
                f"chain {'valid' if row['verify']['ok'] else 'BROKEN'}"
            )
            base = f"{b['rps']:,.0f} req/s, p99 {b['p99_ms']:.0f} ms"
            ratio = f"{row['ratio']:.0%} of req/s"
        else:
            load = "1 stream"
            got = (
                f"{s['events']:,} events, {s['events_per_s']:,.0f} events/s, "
                f"worker peak RSS {s['peak_rss_mb']:.0f} MB (was {s['rss_before_mb']:.0f} MB)"
            )
            base = f"{b['events_per_s']:,.0f} lines/s, peak RSS {b['peak_rss_mb']:.0f} MB"
            ratio = f"{row['ratio']:.0%} of lines/s"
        lines.append(
            f"| {measure} | {row['db']} | {row['subjects']:,} | {load} | {got} | {base} | {ratio} |"
        )
    return "\n".join(lines)


def targets(rows: list[dict[str, Any]]) -> str:
    """Each target from the issue, met or not, from this run's rows."""
    out = []
    checks = [r for r in rows if r["measure"] == "check"]
    for row in checks:
        name = f"check {row['db']} {row['subjects']:,} c{row['connections']}"
        goal = "75%" if row["db"] == "sqlite" else "55%"
        out.append(f"- {name}: {row['ratio']:.0%} of bare (target ≥ {goal} at 32 conn)")
        if row["connections"] == 32:
            p99 = row["service"]["p99_ms"]
            out.append(f"- {name}: p99 {p99:.1f} ms (target ≤ 20 ms)")
    for kind in ("sqlite", "postgresql"):
        by_size = {r["subjects"]: r for r in checks if r["db"] == kind and r["connections"] == 32}
        if 10_000 in by_size and 1_000_000 in by_size:
            small, big = by_size[10_000], by_size[1_000_000]
            slower = 1 - (big["ratio"] / small["ratio"])
            out.append(f"- check {kind} at 1M vs 10k (as ratios to bare): {slower:+.0%} slower")
    for row in rows:
        if row["measure"] == "batch 10,000":
            p50, goal = row["service"]["p50_ms"], 65 if row["db"] == "sqlite" else 85
            out.append(
                f"- batch 10,000 {row['db']} {row['subjects']:,}: p50 {p50:.0f} ms "
                f"(≤ {goal} ms; bare {row['bare']['p50_ms']:.0f} ms in this run)"
            )
        if row["measure"].startswith("writes"):
            eps = row["service"]["events_per_s"]
            out.append(
                f"- writes from {row['sent_by']}: {eps:,.0f} events/s (target ≥ 600; bare "
                f"{row['bare']['rps']:,.0f} req/s in this run)"
            )
        if row["measure"].startswith("check, workers recycled"):
            out.append(
                f"- {row['restarts']} worker restarts in {row['service']['seconds']:.0f} s cost "
                f"{1 - row['ratio']:.0%} of req/s ({row['db']}; the baseline is the service as "
                "gunicorn.conf.py runs it)"
            )
        if row["measure"] == "access log":
            out.append(
                f"- access log: redacting {row['ratio']:.0%} of plain gunicorn's req/s "
                "(target ≥ 100 %, within noise)"
            )
        if row["measure"] == "export":
            s = row["service"]
            out.append(
                f"- export {s['events']:,} events: {s['events_per_s']:,.0f}/s (≥ 50,000), "
                f"peak {s['peak_rss_mb']:.0f} MB (< 100 MB)"
            )
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--with-1m", action="store_true", help="also 1M subjects (seeded once)")
    parser.add_argument("--seconds", type=float, default=10, help="length of each load")
    parser.add_argument(
        "--only",
        choices=["checks", "batch", "recycling", "writes", "export", "logs"],
        action="append",
        help="a part only",
    )
    parser.add_argument("--db", choices=["sqlite", "postgresql"], action="append")
    args = parser.parse_args()
    parts = set(args.only or ["logs", "checks", "recycling", "writes", "export"])
    if parts & {"logs", "checks"} and shutil.which("wrk") is None:
        sys.exit("wrk is missing: apt-get install -y wrk")
    (RESULTS / "logs").mkdir(parents=True, exist_ok=True)
    DATA.mkdir(parents=True, exist_ok=True)
    kinds = args.db or ["sqlite", "postgresql"]
    sizes = [10_000, 1_000_000] if args.with_1m else [10_000]
    run = Run(args.seconds)
    started = time.monotonic()
    if "logs" in parts:
        run.attempt(run.logs, None)
    for kind in kinds:
        for subjects in sizes:
            database = Database(kind, subjects)
            seed.ensure(database.url, subjects, RESULTS / "instance")
            if "checks" in parts:
                run.attempt(run.checks, database)
            elif "batch" in parts:
                run.attempt(run.batch, database)
            if "recycling" in parts and kind == "sqlite" and subjects == 10_000:
                run.attempt(run.recycling, database)
    if "writes" in parts and "postgresql" in kinds:
        run.attempt(run.writes, Database("postgresql", 10_000))
    if "export" in parts and "postgresql" in kinds:
        run.attempt(run.export, Database("postgresql", sizes[-1]))
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    document = {
        "started": stamp,
        "seconds_per_load": args.seconds,
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
        "rows": run.rows,
        "wall_seconds": time.monotonic() - started,
    }
    for name in (f"run-{stamp}.json", "latest.json"):
        (RESULTS / name).write_text(json.dumps(document, indent=2))
    print()
    print(table(run.rows))
    print()
    print(targets(run.rows))
    print(f"\n(results in bench/results/run-{stamp}.json, {document['wall_seconds']:.0f} s)")


if __name__ == "__main__":
    main()
