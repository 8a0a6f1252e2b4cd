"""The single check in process: Flask's path against the fast one (app/api/fastcheck.py).

CPU time per request (time.process_time), both paths through the same app's WSGI callable in
one run, against a seeded bench database (bench.seed), rate limits on as deployed:

    python -m bench.check_stages sqlite:///bench/results/data/sqlite-10k.db
"""

from __future__ import annotations

import io
import random
import sys
import time
from typing import Any

from flask import Flask

from app import create_app
from app.config import Settings
from bench import seed


def _environ(path: str, query: str, token: str) -> dict[str, Any]:
    return {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_AUTHORIZATION": f"Bearer {token}",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "wsgi.version": (1, 0),
    }


def per_request_us(app: Flask, token: str, subjects: int, n: int) -> float:
    def start_response(status: str, headers: list[tuple[str, str]], exc: Any = None) -> None:
        assert status.startswith("200"), status

    queries = [
        f"email=user{random.randrange(subjects)}%40bench.example&channel=email&category=newsletter"
        for _ in range(n)
    ]
    started = time.process_time()
    for query in queries:
        chunks = app(_environ("/v1/consent/check", query, token), start_response)
        b"".join(chunks)
        getattr(chunks, "close", lambda: None)()
    return (time.process_time() - started) / n * 1e6


def main() -> None:
    url, subjects, n = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 10_000, 300
    base = Settings.from_env().with_overrides(
        database_url=url,
        secret_key=seed.SECRET_KEY,
        identifier_key=seed.IDENTIFIER_KEY,
    )
    for ratelimit in (True, False):
        figures = {}
        for fast in (False, True, False, True):
            app = create_app(base.with_overrides(fast_check=fast, ratelimit_enabled=ratelimit))
            token = _token(app)
            per_request_us(app, token, subjects, 200)  # warm: token cached, connections made
            figures.setdefault(fast, []).append(per_request_us(app, token, subjects, n))
        flask_us, fast_us = min(figures[False]), min(figures[True])
        print(
            f"rate limits {'on ' if ratelimit else 'off'}: Flask path {flask_us:,.0f} µs,"
            f" fast path {fast_us:,.0f} µs per request (CPU, best of 2 x {n})"
        )


def _token(app: Flask) -> str:
    from sqlalchemy.orm import Session

    from app.domain.vocabulary import ALL_SCOPES
    from app.extensions import db
    from app.services import clients

    with app.app_context(), Session(db.engine) as session:
        credentials = clients.create(session, "stages", sorted(ALL_SCOPES), iterations=1000)
    response = app.test_client().post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(credentials.client_id, credentials.client_secret),
    )
    return str(response.get_json()["access_token"])


if __name__ == "__main__":
    main()
