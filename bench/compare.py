"""Two checkouts of the service under the same check load and the same drift of the host.

bench.run gives each figure as a ratio to bare Flask in the same run, but this 2-core host
drifts by a third within minutes (bare Flask's check: 2,147 and 3,220 req/s in runs four
minutes apart), so a before/after pair of runs can show a gain that is not there. Here bare
Flask and the service from both checkouts are up at once, and wrk loads each in turn in short
bursts, the order reversed every round. Each figure is a median; B/A is the median of the
rounds' own ratios.

    git worktree add /tmp/before <commit>
    python -m bench.compare /tmp/before .                       # SQLite, 8 rounds of 2 s
    python -m bench.compare /tmp/before . --db postgresql --rounds 12

Both serve this checkout's seeded database (bench/results/data, or PostgreSQL's cc_bench).
"""

from __future__ import annotations

import argparse
import statistics
from contextlib import ExitStack
from pathlib import Path

from bench import seed
from bench.run import DATA, RESULTS, Database, Server, service_env, token_for, wrk


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a", type=Path, help="checkout A (the baseline, e.g. a worktree)")
    parser.add_argument("b", type=Path, help="checkout B")
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=2, help="length of each burst")
    parser.add_argument("--port", type=int, default=18600)
    args = parser.parse_args()
    database = Database(args.db, 10_000)
    (RESULTS / "logs").mkdir(parents=True, exist_ok=True)
    DATA.mkdir(parents=True, exist_ok=True)
    seed.ensure(database.url, database.subjects, RESULTS / "instance")
    with ExitStack() as stack:
        servers = {
            "bare": Server("bench.bare_app:app", args.port, {"GUNICORN_ACCESS_LOG": "/dev/null"})
        }
        stack.callback(servers["bare"].stop)
        for offset, (name, root) in enumerate((("A", args.a), ("B", args.b)), start=1):
            server = Server(
                "app:create_app()", args.port + offset, service_env(database), root.resolve()
            )
            stack.callback(server.stop)
            servers[name] = server
        token = token_for(database, servers["A"].port)
        for server in servers.values():  # warm: the token cached, the pages read
            wrk(server.port, 32, 1, database.subjects, token)
        rps: dict[str, list[float]] = {name: [] for name in servers}
        p99: dict[str, list[float]] = {name: [] for name in servers}
        for index in range(args.rounds):
            order = list(servers) if index % 2 == 0 else list(servers)[::-1]
            for name in order:
                got = wrk(servers[name].port, 32, args.seconds, database.subjects, token)
                rps[name].append(got["rps"])
                p99[name].append(got["p99_ms"])
    bare = statistics.median(rps["bare"])
    print(f"{args.db}, 32 connections, {args.rounds} rounds of {args.seconds:g} s (medians):")
    print(f"  bare Flask  {bare:,.0f} req/s")
    for name in ("A", "B"):
        ratio = statistics.median(s / b for s, b in zip(rps[name], rps["bare"], strict=True))
        root = getattr(args, name.lower())
        print(
            f"  {name} {root!s:<9} {statistics.median(rps[name]):,.0f} req/s, {ratio:.2f}x bare,"
            f" p99 {statistics.median(p99[name]):.1f} ms"
        )
    paired = statistics.median(b / a for a, b in zip(rps["A"], rps["B"], strict=True))
    print(f"  B/A {paired:.3f}")


if __name__ == "__main__":
    main()
