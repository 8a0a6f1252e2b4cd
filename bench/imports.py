"""Benchmark: importing a list on PostgreSQL, and a check by external_id against one by email.

    python -m bench.imports --rows 100000          # generate, import, verify, compare checks

The list is written to a file, then imported by `consent-center import` in a child process,
whose wall time and peak memory (ru_maxrss) are printed; `consent-center audit verify` must
pass afterwards. The check comparison runs both kinds interleaved over the imported people,
through the service function the API calls, and prints the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from app.components import build
from app.config import Settings
from app.database import make_engine
from app.domain.identifiers import identifier
from app.domain.vocabulary import IdentifierKind
from app.services.consent import checks

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "bench" / "results" / "data"
PG_BASE = os.environ.get("BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/")
DATABASE = os.environ.get("BENCH_IMPORT_DB", "cc_bench_import")  # dropped and made again


def rows(count: int, seed: int = 14) -> Iterator[dict[str, str]]:
    """A realistic mix: most confirmed elsewhere, some single opt-in, withdrawals, SMS."""
    rng = random.Random(seed)
    for i in range(count):
        kind = rng.random()
        row = {
            "email": f"person{i}@import.example",
            "external_id": f"crm-{i}",
            "channel": "email",
            "category": "newsletter",
            "status": "granted",
            "consented_at": f"20{10 + i % 14:02d}-0{1 + i % 9}-1{i % 10}T09:30:00Z",
            "source": "legacy-crm",
            "method": "double_opt_in",
            "ip": f"198.51.{i % 256}.{(i // 256) % 256}",
            "user_agent": "Mozilla/5.0 (legacy import)",
        }
        if kind < 0.15:
            row["method"] = "single_opt_in"
        elif kind < 0.20:
            row["status"] = "withdrawn"
        elif kind < 0.25:
            row |= {"channel": "sms", "category": "offers", "phone": f"+4915{i:09d}"}
        yield row


def write_file(path: Path, count: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as out:
        for row in rows(count):
            out.write(json.dumps(row) + "\n")


def fresh_database(env: dict[str, str]) -> str:
    admin = create_engine(f"{PG_BASE}postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)"))
        connection.execute(text(f"CREATE DATABASE {DATABASE}"))
    admin.dispose()
    url = f"{PG_BASE}{DATABASE}"
    subprocess.run(
        [sys.executable, "-m", "app.cli", "db", "upgrade"],
        env=env | {"DATABASE_URL": url},
        check=True,
        capture_output=True,
    )
    return url


def timed_import(env: dict[str, str], path: Path) -> tuple[float, float, int, dict[str, object]]:
    """Wall seconds, CPU seconds, peak RSS in MB and the final report of `consent-center
    import` (its CPU time moves less with the machine's load than its wall time)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "app.cli", "import", str(path)],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    seconds = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return seconds, cpu, after.ru_maxrss // 1024, json.loads(done.stdout.strip().splitlines()[-1])


def compare_checks(env: dict[str, str], count: int, samples: int) -> dict[str, float]:
    """Median microseconds of a check by email and by external_id, interleaved."""
    settings = Settings.from_env(env)
    rules = build(settings).rules
    # The service's own engine settings (no JIT among them), reading in autocommit.
    engine = make_engine(settings.database_url).execution_options(isolation_level="AUTOCOMMIT")
    question = checks.Question("email", "newsletter")
    rng = random.Random(7)
    by: dict[str, list[float]] = {"email": [], "external_id": []}
    with Session(engine) as session:
        for n in range(samples + 200):
            i = rng.randrange(count)
            pairs = [
                ("email", identifier(IdentifierKind.EMAIL, f"person{i}@import.example")),
                ("external_id", identifier(IdentifierKind.EXTERNAL_ID, f"crm-{i}")),
            ]
            if n % 2:
                pairs.reverse()
            for name, ident in pairs:
                started = time.perf_counter()
                checks.check(session, rules, question, ident=ident)
                if n >= 200:  # the first ones warm the caches
                    by[name].append(time.perf_counter() - started)
    engine.dispose()
    email = statistics.median(by["email"]) * 1e6
    external = statistics.median(by["external_id"]) * 1e6
    return {"email_us": round(email, 1), "external_id_us": round(external, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--samples", type=int, default=3000, help="checks of each kind")
    args = parser.parse_args()
    env = dict(os.environ) | {
        "SECRET_KEY": "bench-secret-key-that-is-long-enough",
        "INSTANCE_PATH": str(DATA / "import-instance"),
    }
    path = DATA / f"import-{args.rows}.ndjson"
    if not path.exists():
        write_file(path, args.rows)
    env["DATABASE_URL"] = fresh_database(env)
    seconds, cpu, peak_mb, report = timed_import(env, path)
    verified = subprocess.run(
        [sys.executable, "-m", "app.cli", "audit", "verify"], env=env, capture_output=True
    )
    timing = compare_checks(env, args.rows, args.samples)
    ratio = timing["external_id_us"] / timing["email_us"]
    result = {
        "rows": args.rows,
        "file_mb": round(path.stat().st_size / 1e6, 1),
        "seconds": round(seconds, 1),
        "rows_per_second": round(args.rows / seconds),
        "import_cpu_seconds": round(cpu, 1),  # the importing process's own, not PostgreSQL's
        "cpu_us_per_row": round(cpu / args.rows * 1e6),
        "extrapolated_1m_minutes": round(seconds * 1_000_000 / args.rows / 60, 1),
        "load_average": os.getloadavg(),
        "peak_rss_mb": peak_mb,
        "applied": report["applied"],
        "rejected": report["rejected"],
        "chain_valid": verified.returncode == 0,
        **timing,
        "check_ratio_external_id_to_email": round(ratio, 3),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
