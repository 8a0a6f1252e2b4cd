"""SIGKILL to gunicorn workers during a write load on PostgreSQL loses no acknowledged write.

Every write that was answered 2xx must be in the ledger afterwards, and the chain must verify.
Writes cut off by a kill get no answer; they may or may not have been committed, and either
is fine, because the client was never told they were.
Run alone with `pytest -s tests/faults/test_worker_kill.py` to see the figures.
"""

from __future__ import annotations

import json
import os
import random
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from app.models import ConsentEvent, ConsentState
from app.services.audit import trail
from tests.faults.conftest import Gunicorn

LOAD_SECONDS = 10.0
WRITERS = 6
KILL_EVERY = 1.5


@dataclass
class Tally:
    subscribed: list[str] = field(default_factory=list)  # subject ids answered 202
    withdrawn: list[str] = field(default_factory=list)  # subject ids whose PATCH answered 200
    unanswered: int = 0
    refused: dict[int, int] = field(default_factory=dict)
    kills: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def _writer(server: Gunicorn, number: int, stop_at: float, tally: Tally) -> None:
    i = 0
    while time.monotonic() < stop_at:
        i += 1
        body = {"email": f"w{number}-{i}@example.org", "categories": ["newsletter", "offers"]}
        try:
            answer = server.request("POST", "/v1/subscriptions", body)
            if answer.status != 202:
                with tally.lock:
                    tally.refused[answer.status] = tally.refused.get(answer.status, 0) + 1
                continue
            subject_id = answer.body["subject_id"]
            with tally.lock:
                tally.subscribed.append(subject_id)
            change = {"changes": [{"channel": "email", "status": "withdrawn"}]}
            answer = server.request("PATCH", f"/v1/subjects/{subject_id}/preferences", change)
            if answer.status == 200:
                with tally.lock:
                    tally.withdrawn.append(subject_id)
            else:
                with tally.lock:
                    tally.refused[answer.status] = tally.refused.get(answer.status, 0) + 1
        except OSError:  # the worker died under this request: no answer, no promise
            with tally.lock:
                tally.unanswered += 1


def _killer(server: Gunicorn, stop_at: float, tally: Tally) -> None:
    chooser = random.Random(8)
    while time.monotonic() < stop_at - KILL_EVERY:
        time.sleep(KILL_EVERY)
        pids = server.worker_pids()
        if pids:
            try:
                os.kill(chooser.choice(pids), signal.SIGKILL)
                tally.kills += 1
            except ProcessLookupError:
                pass


@pytest.mark.slow
def test_killing_workers_under_write_load_loses_no_acknowledged_write(
    gunicorn: Callable[..., Gunicorn], clean_db: Engine
) -> None:
    if clean_db.dialect.name != "postgresql":
        pytest.skip("the worker-kill fault is run against PostgreSQL")
    server = gunicorn(workers=3, GUNICORN_TIMEOUT="10")
    tally = Tally()
    stop_at = time.monotonic() + LOAD_SECONDS
    threads = [
        threading.Thread(target=_writer, args=(server, n, stop_at, tally)) for n in range(WRITERS)
    ]
    threads.append(threading.Thread(target=_killer, args=(server, stop_at, tally)))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=LOAD_SECONDS + 30)

    with Session(clean_db) as session:
        with_events = set(session.scalars(select(ConsentEvent.subject_id).distinct()))
        withdrawn_now = set(
            session.scalars(
                select(ConsentState.subject_id).where(
                    ConsentState.channel == "email",
                    ConsentState.category == "",
                    ConsentState.status == "withdrawn",
                )
            )
        )
        result = trail.verify(session)
    lost = [s for s in tally.subscribed if s not in with_events]
    lost += [s for s in tally.withdrawn if s not in withdrawn_now]
    figures = {
        "acknowledged_writes": len(tally.subscribed) + len(tally.withdrawn),
        "unanswered_writes": tally.unanswered,
        "refused": tally.refused,
        "workers_killed": tally.kills,
        "events_in_ledger": result.events_checked,
        "chain_ok": result.is_ok,
        "acknowledged_writes_lost": len(lost),
    }
    print("worker-kill fault:", json.dumps(figures))
    assert tally.kills >= 3
    assert len(tally.subscribed) >= 5  # a loaded CI machine still gets this far
    assert lost == []
    assert result.is_ok, result.problem
    assert not [status for status in tally.refused if status >= 500 and status != 503]
