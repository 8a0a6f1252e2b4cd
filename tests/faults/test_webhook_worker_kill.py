"""SIGKILL of `consent-center worker` in the middle of webhook deliveries loses nothing.

The receiver answers slowly, so each kill lands while a delivery is in flight. After a
restart (the dead worker's lease on the receiver runs out), the receiver has every change,
each signature verifies, and the first arrival of each webhook-id follows the ledger order.
Deliveries whose outcome the kill cut off (outcomes are committed in groups) may arrive
twice, with the same webhook-id: Standard Webhooks receivers deduplicate by it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from app.domain.rules import Rules
from app.models import WebhookDelivery
from app.services.changes import feed
from app.services.delivery import webhooks
from tests.conftest import DATABASE_URL, IDENTIFIER_KEY
from tests.factories import make_subscriber
from tests.receiver import Receiver, receiving

SUBJECTS = 15
KILLS = 3


def start_worker(tmp: Path) -> subprocess.Popen[bytes]:
    environ = os.environ | {
        "DATABASE_URL": DATABASE_URL,
        "SECRET_KEY": "fault-test-secret-key-long-enough",
        "IDENTIFIER_HMAC_KEY": IDENTIFIER_KEY.decode(),
        "INSTANCE_PATH": str(tmp / "instance"),
        "OUTBOX_DIR": str(tmp / "outbox"),
        "WEBHOOK_ALLOW_PRIVATE": "true",
        "WEBHOOK_LEASE_SECONDS": "2",
    }
    script = Path(sys.executable).parent / "consent-center"
    return subprocess.Popen(
        [str(script), "worker", "--interval", "0.2", "--no-jobs"],
        env=environ,
        stdout=subprocess.DEVNULL,
        stderr=(tmp / "worker.err").open("ab"),
    )


def wait_for(receiver: Receiver, count: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while len(receiver.received) < count and time.monotonic() < deadline:
        time.sleep(0.02)


def delivered(engine: Engine) -> int:
    with Session(engine) as session:
        return int(
            session.scalar(select(func.count()).where(WebhookDelivery.status == webhooks.DELIVERED))
            or 0
        )


@pytest.mark.slow
def test_killing_the_worker_mid_delivery_loses_nothing(
    clean_db: Engine, rules: Rules, tmp_path: Path
) -> None:
    with receiving() as receiver, Session(clean_db) as session:
        receiver.pause_seconds = 0.05
        made = webhooks.register(
            session, receiver.url, ["consent.changed"], actor="tests", allow_private=True
        )
        receiver.secret = made.secret
        for n in range(SUBJECTS):
            make_subscriber(session, rules, email=f"k{n}@example.org")
        changes, _ = feed.page(session, 0, 1000)
        session.rollback()

        kills = 0
        for _ in range(KILLS):
            worker = start_worker(tmp_path)
            wait_for(receiver, len(receiver.received) + 8)
            os.kill(worker.pid, signal.SIGKILL)  # most likely while the receiver is thinking
            worker.wait()
            kills += 1
        worker = start_worker(tmp_path)
        try:
            deadline = time.monotonic() + 90
            while delivered(clean_db) < len(changes) and time.monotonic() < deadline:
                time.sleep(0.1)
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(timeout=20)

    first_arrivals: dict[str, str] = {}
    for received in receiver.received:
        first_arrivals.setdefault(received.webhook_id, received.body["data"]["cursor"])
    arrived = list(first_arrivals.values())
    assert kills == KILLS
    assert sorted(arrived, key=int) == [c["cursor"] for c in changes]  # every change, once each
    assert arrived == sorted(arrived, key=int)  # in ledger order
    assert all(r.verified for r in receiver.received)
    # Repeats only of what a kill cut off: at most one uncommitted group of outcomes each.
    assert len(receiver.received) - len(arrived) <= KILLS * webhooks.OUTCOMES_PER_COMMIT
    assert delivered(clean_db) == len(changes)
