"""Measure `audit verify`, live and offline: events per second and peak memory, per size.

Each size is seeded once with bench/seed.py (about 2.1 events per subject), then each
measurement runs in a fresh child process that reports its wall time and peak RSS, so one
run's memory cannot hide another's. Flat memory across sizes shows the single streaming pass.

    python -m bench.verify --database-url sqlite:///bench/results/data/verify-{events}.db \\
        --events 10000 100000 [1000000]

`{events}` in the URL is replaced by each size (a database per size). For PostgreSQL, create
the databases first, e.g. `verify_10000`, and pass `postgresql+psycopg://.../verify_{events}`.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.seed import ensure

INSTANCE = Path("bench/results/instance")
EVENTS_PER_SUBJECT = 2.1  # seed.py: a channel grant, a category grant, every tenth a withdrawal


def peak_rss_mb() -> float:
    """This process's high-water RSS (VmHWM: unlike ru_maxrss, not inherited from the parent)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def live(database_url: str) -> dict[str, Any]:
    from sqlalchemy.orm import Session

    from app.database import make_engine
    from app.services.audit import checkpoints, trail

    keys = checkpoints.load_keys(INSTANCE / "audit-signing-key.json").verifying()
    engine = make_engine(database_url)
    before = peak_rss_mb()
    started = time.perf_counter()
    with Session(engine) as session:
        report = trail.verify(session, keys=keys)
    seconds = time.perf_counter() - started
    engine.dispose()
    return _figures(report.is_ok, report.events_checked, seconds, before, report.problem)


def chain_only(database_url: str) -> dict[str, Any]:
    """The baseline: the hash chain alone, as verify checked it before (no other record)."""
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from app.database import make_engine
    from app.domain import chain
    from app.models import ChainHead, ConsentEvent

    engine = make_engine(database_url)
    events = ConsentEvent.__table__
    before = peak_rss_mb()
    started = time.perf_counter()
    with Session(engine) as session:
        head = session.get(ChainHead, "main")
        assert head is not None

        def rows() -> Any:
            after = head.base_seq
            while True:
                page = [
                    dict(r)
                    for r in session.execute(
                        select(events)
                        .where(events.c.seq > after)
                        .order_by(events.c.seq)
                        .limit(2000)
                    ).mappings()
                ]
                if not page:
                    return
                yield from page
                after = page[-1]["seq"]

        result = chain.verify(rows(), head_seq=head.last_seq, head_hash=head.last_hash)
    seconds = time.perf_counter() - started
    engine.dispose()
    return _figures(result.is_ok, result.events_checked, seconds, before, result.problem)


def export(database_url: str, package_file: Path) -> None:
    from sqlalchemy.orm import Session

    from app.config import PACKAGE_DATA
    from app.database import make_engine
    from app.domain.catalog import load_catalog
    from app.services.audit import checkpoints, package, trail

    keys = checkpoints.load_keys(INSTANCE / "audit-signing-key.json")
    catalog = load_catalog(PACKAGE_DATA / "catalog.yaml").as_dict()
    engine = make_engine(database_url)
    with Session(engine) as session, package_file.open("w", encoding="utf-8") as out:
        for line in package.stream(session, trail.EventFilter(), keys, catalog):
            out.write(line)
    engine.dispose()
    (package_file.with_suffix(".jwks.json")).write_text(json.dumps(keys.jwks()))


def offline(package_file: Path) -> dict[str, Any]:
    from app.domain import proof

    keys = proof.key_set(json.loads(package_file.with_suffix(".jwks.json").read_text()))
    before = peak_rss_mb()
    started = time.perf_counter()
    with package_file.open(encoding="utf-8") as lines:
        report = proof.verify_package(lines, keys)
    seconds = time.perf_counter() - started
    return _figures(report.is_ok, report.events_checked, seconds, before, report.problem)


def _figures(
    is_ok: bool, events: int, seconds: float, before: float, problem: str | None
) -> dict[str, Any]:
    return {
        "ok": is_ok,
        "events": events,
        "seconds": round(seconds, 2),
        "events_per_s": round(events / seconds) if seconds else None,
        "rss_before_mb": round(before, 1),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "problem": problem,
    }


def _child(*args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "bench.verify", "--child", *args],
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url")
    parser.add_argument("--events", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        mode, target = args.child[0], args.child[1]
        if mode == "live":
            print(json.dumps(live(target)))
        elif mode == "chain":
            print(json.dumps(chain_only(target)))
        elif mode == "export":
            export(target, Path(args.child[2]))
            print("{}")
        else:
            print(json.dumps(offline(Path(target))))
        return
    INSTANCE.mkdir(parents=True, exist_ok=True)
    rows = []
    for events in args.events:
        url = args.database_url.replace("{events}", str(events))
        ensure(url, round(events / EVENTS_PER_SUBJECT), INSTANCE)
        package_file = INSTANCE.parent / f"verify-package-{events}.ndjson"
        _child("export", url, str(package_file))
        rows.append({"size": events, "mode": "chain only (baseline)"} | _child("chain", url))
        rows.append({"size": events, "mode": "live"} | _child("live", url))
        rows.append({"size": events, "mode": "offline"} | _child("offline", str(package_file)))
        package_file.unlink()
        print(*(json.dumps(row) for row in rows[-3:]), sep="\n", flush=True)
    print("\n| events | mode | ok | seconds | events/s | RSS before (MB) | peak RSS (MB) |")
    print("| ---: | --- | --- | ---: | ---: | ---: | ---: |")
    for row in rows:
        print(
            f"| {row['events']:,} | {row['mode']} | {row['ok']} | {row['seconds']} | "
            f"{row['events_per_s']:,} | {row['rss_before_mb']} | {row['peak_rss_mb']} |"
        )


if __name__ == "__main__":
    main()
