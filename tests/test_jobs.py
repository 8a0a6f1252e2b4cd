"""Scheduled jobs run once per turn, however many workers claim them at the same moment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from app import components, worker
from app.config import Settings
from app.domain.vocabulary import Action
from app.models import AccessLog, ConsentEvent
from app.services import jobs
from tests.concurrency import at_once
from tests.conftest import DATABASE_URL

ALL_JOBS = ["checkpoint", "retention", "rights_overdue"]


def retention_runs(engine: Engine) -> int:
    with Session(engine) as session:
        return int(
            session.scalar(
                select(func.count()).where(ConsentEvent.action == str(Action.RETENTION_RUN))
            )
            or 0
        )


def test_a_turn_is_claimed_once_and_the_next_comes_after_the_interval(clean_db: Engine) -> None:
    with Session(clean_db) as session:
        assert jobs.claim(session, "retention", timedelta(hours=24), "w1")
        assert not jobs.claim(session, "retention", timedelta(hours=24), "w2")
        later = jobs.state(session)["retention"].next_due_at + timedelta(seconds=1)
        assert jobs.claim(session, "retention", timedelta(hours=24), "w2", now=later)
        assert jobs.state(session)["retention"].claimed_by == "w2"


def test_two_workers_at_the_same_moment_run_each_job_once(
    clean_db: Engine, settings: Settings
) -> None:
    parts = components.build(settings)

    def one(name: str) -> list[str]:
        return worker.run_due_jobs(clean_db, parts, worker=name)

    names = ("w1", "w2")
    ran = dict(zip(names, at_once(*[partial(one, name) for name in names]), strict=True))
    assert sorted(ran["w1"] + ran["w2"]) == ALL_JOBS
    assert retention_runs(clean_db) == 1
    with Session(clean_db) as session:
        state = jobs.state(session)
    assert all(state[name].finished_at is not None for name in ALL_JOBS)
    assert json.loads(state["rights_overdue"].outcome or "{}") == {"overdue": 0}
    # A second pass right away finds nothing due.
    assert worker.run_due_jobs(clean_db, parts, worker="w3") == []


def test_two_worker_processes_run_each_job_once(
    clean_db: Engine, settings: Settings, tmp_path: Path
) -> None:
    env = os.environ | {
        "DATABASE_URL": DATABASE_URL,
        "SECRET_KEY": settings.secret_key,
        "INSTANCE_PATH": str(tmp_path / "instance"),
        "OUTBOX_DIR": str(tmp_path / "outbox"),
        "AUDIT_SIGNING_KEY_PATH": str(settings.signing_key_path),
    }
    components.build(settings)  # the key exists before both start
    command = [sys.executable, "-m", "app.cli", "worker", "--once"]
    workers = [
        subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    finished = [w.communicate(timeout=60) for w in workers]
    assert all(w.returncode == 0 for w in workers)
    outputs = [json.loads(out) for out, _ in finished]
    assert sorted(outputs[0]["jobs"] + outputs[1]["jobs"]) == ALL_JOBS
    # Each run is logged as a JSON line, as the web process logs.
    logged = [json.loads(line) for _, err in finished for line in err.splitlines()]
    ran = sorted(e["message"].split()[1] for e in logged if e["message"].startswith("job "))
    assert ran == ALL_JOBS
    assert retention_runs(clean_db) == 1


def test_the_scheduled_retention_keeps_the_configured_periods(
    clean_db: Engine, settings: Settings
) -> None:
    """The worker's run removes what the CLI's run removes: the access log and the development
    outbox's mail files after their configured periods, not the defaults."""
    configured = settings.with_overrides(
        access_log_retention=timedelta(days=2),
        mail_retention=timedelta(days=1),
        webhook_log_retention=timedelta(days=3),
    )
    now = datetime.now(UTC)
    with Session(clean_db) as session:
        session.add_all(
            AccessLog(subject_id="s", occurred_at=now - timedelta(days=age), page="preferences")
            for age in (1, 3)  # kept, and past the two days (within the default 30)
        )
        session.commit()
    outbox = configured.outbox_dir
    outbox.mkdir(parents=True, exist_ok=True)
    (old := outbox / "old.eml").write_text("To: a@example.org\n")
    two_days_ago = (now - timedelta(days=2)).timestamp()
    os.utime(old, (two_days_ago, two_days_ago))
    (outbox / "new.eml").write_text("To: b@example.org\n")

    assert "retention" in worker.run_due_jobs(clean_db, components.build(configured), worker="w")

    with Session(clean_db) as session:
        ages = [now - t for t in session.scalars(select(AccessLog.occurred_at))]
        logged = session.scalar(
            select(ConsentEvent.details).where(ConsentEvent.action == str(Action.RETENTION_RUN))
        )
        outcome = json.loads(logged or "{}")  # the run's own event names its periods
    assert [age.days for age in ages] == [1]
    assert sorted(p.name for p in outbox.glob("*.eml")) == ["new.eml"]
    assert outcome["periods_days"]["access_log"] == 2
    assert outcome["periods_days"]["mail"] == 1
    assert outcome["periods_days"]["webhook_log"] == 3
