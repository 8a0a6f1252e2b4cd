"""Known versus unknown addresses on the public forms that take one, in process.

Each form is posted through the Flask test client (no HTTP, no rate limits, no CSRF) with a
known address and with a new one, interleaved and alternating which goes first, --runs times;
every post uses a fresh address, so no once-per-interval rule hides the work. It prints, per
form, the median wall time and CPU time (time.process_time) of one post, known and unknown,
their ratio, and the SQL statements and outbox rows each wrote, with the load average.

- /subscribe: a confirmed subscriber asking again for what they have, against a new address.
- /preferences ("email me my link"): a subscriber's address against one nobody holds.
- /p/<token>/contacts/email (add an address): one another person holds against a new one.
The privacy center's access request takes no address (the preference link names the
subject), so it has no known and unknown case.

    python -m bench.equal_work [--runs 300] [--database-url postgresql+psycopg://…/SCRATCH]

A --database-url must name a scratch database: its tables are dropped and made again.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, event, func, select
from sqlalchemy.orm import Session

from app import create_app
from app.config import PACKAGE_DATA, Settings
from app.domain.identifiers import identifier
from app.domain.vocabulary import IdentifierKind, Method
from app.models import OutboxMessage
from app.services.consent import notices
from app.services.consent.ledger import Act
from app.services.optin import confirmation, subscriptions
from app.services.tokens import Purpose, Tokens

ACT = Act(actor="client:bench", method=Method.API, source="bench")


@dataclass
class Side:
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    statements: list[int] = field(default_factory=list)
    outbox: list[int] = field(default_factory=list)


def _app(database_url: str, instance: Path) -> Flask:
    settings = Settings(
        database_url=database_url,
        secret_key="bench-secret-key-that-is-long-enough",
        identifier_key=b"bench-identifier-key-of-32-bytes",
        instance_path=instance,
        outbox_dir=instance / "outbox",
        base_url="http://127.0.0.1:7200",
        ratelimit_enabled=False,
        audit_signing_key_path=instance / "audit-signing-key.json",
    )
    app = create_app(settings)
    app.config["WTF_CSRF_ENABLED"] = False
    return app


def _engine(app: Flask) -> Engine:
    from app.extensions import db

    with app.app_context():
        return db.engine


def _subscribers(app: Flask, engine: Engine, prefix: str, count: int) -> list[str]:
    """`count` confirmed newsletter subscribers `prefix-N@example.org`; their subject ids."""
    rules = app.extensions["rules"]
    made = []
    with Session(engine) as session:
        for n in range(count):
            ident = identifier(IdentifierKind.EMAIL, f"{prefix}-{n}@example.org")
            asked = subscriptions.request(session, rules, ident, "email", ["newsletter"], ACT)
            assert asked.request is not None
            confirmation.confirm_request(session, rules, asked.request.id, ACT)
            made.append(asked.subject_id)
    return made


@contextmanager
def _counted(engine: Engine) -> Iterator[list[int]]:
    sent = [0]

    def note(*_: Any) -> None:
        sent[0] += 1

    event.listen(engine, "before_cursor_execute", note)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", note)


def _outbox(engine: Engine) -> int:
    with Session(engine) as session:
        return int(session.scalar(select(func.count()).select_from(OutboxMessage)) or 0)


def _post(client: FlaskClient, engine: Engine, side: Side, url: str, data: dict[str, str]) -> None:
    before = _outbox(engine)
    with _counted(engine) as sent:
        wall, cpu = time.perf_counter(), time.process_time()
        response = client.post(url, data=data)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    assert response.status_code == 303, (url, response.status_code)
    side.wall.append(wall)
    side.cpu.append(cpu)
    side.statements.append(sent[0])
    side.outbox.append(_outbox(engine) - before)


Form = Callable[[int, bool], tuple[str, dict[str, str]]]


def _forms(app: Flask, adders: list[str]) -> dict[str, Form]:
    tokens: Tokens = app.extensions["tokens"]

    def subscribe(n: int, is_known: bool) -> tuple[str, dict[str, str]]:
        email = f"known-{n}@example.org" if is_known else f"new-subscribe-{n}@example.org"
        form = {"email": email, "categories": "newsletter", "notice_version": "2026-11-01"}
        return "/subscribe", form

    def link(n: int, is_known: bool) -> tuple[str, dict[str, str]]:
        email = f"known-{n}@example.org" if is_known else f"new-link-{n}@example.org"
        return "/preferences", {"email": email, "website": ""}

    def add(n: int, is_known: bool) -> tuple[str, dict[str, str]]:
        token = tokens.make(Purpose.PREFERENCES, {"s": adders[n]})
        email = f"known-{n}@example.org" if is_known else f"new-add-{n}@example.org"
        return f"/p/{token}/contacts/email", {"email": email, "locale": "en"}

    return {"/subscribe": subscribe, "/preferences": link, "add an address": add}


def _ms(values: list[float]) -> float:
    return round(statistics.median(values) * 1000, 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="equal-work-") as folder:
        instance = Path(folder)
        url = args.database_url or f"sqlite:///{instance / 'bench.db'}"
        app = _app(url, instance)
        engine = _engine(app)
        with app.app_context():
            from app.extensions import db

            db.drop_all()
            db.create_all()
        with Session(engine) as session:
            notices.publish_file(session, PACKAGE_DATA / "notices.yaml")
        warm = args.runs  # one extra subscriber of each kind, for the untimed first posts
        _subscribers(app, engine, "known", args.runs + 1)
        adders = _subscribers(app, engine, "adder", args.runs + 1)
        forms = _forms(app, adders)
        client = app.test_client()
        for form in forms.values():
            _post(client, engine, Side(), *form(warm, False))  # compile and cache, untimed
        results = {name: (Side(), Side()) for name in forms}
        load_before = os.getloadavg()
        for n in range(args.runs):
            for name, form in forms.items():
                order = (True, False) if n % 2 == 0 else (False, True)
                for is_known in order:
                    side = results[name][0 if is_known else 1]
                    _post(client, engine, side, *form(n, is_known))
        load_after = os.getloadavg()
        engine.dispose()
    print(f"equal work, {args.runs} interleaved runs per side, {engine.dialect.name}")
    print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f} (1 min)")
    header = "form", "known ms", "unknown ms", "ratio", "known cpu", "unknown cpu", "cpu ratio"
    print("{:<16} {:>9} {:>11} {:>6} {:>10} {:>12} {:>9}".format(*header), " statements  outbox")
    for name, (kn, un) in results.items():
        wall, cpu = (_ms(kn.wall), _ms(un.wall)), (_ms(kn.cpu), _ms(un.cpu))
        print(
            f"{name:<16} {wall[0]:>9} {wall[1]:>11} {wall[0] / wall[1]:>6.2f}"
            f" {cpu[0]:>10} {cpu[1]:>12} {cpu[0] / cpu[1] if cpu[1] else 0:>9.2f}"
            f"  {statistics.median(kn.statements):>4} vs {statistics.median(un.statements):<4}"
            f" {sum(kn.outbox)} vs {sum(un.outbox)}"
        )


if __name__ == "__main__":
    main()
