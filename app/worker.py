"""`consent-center worker`: the mail outbox, and the scheduled jobs (retention, checkpoints, the
overdue rights report), each run once per turn however many workers there are."""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from app.components import Components
from app.config import Settings
from app.services import jobs
from app.services.audit import checkpoints
from app.services.audit import retention as retention_service
from app.services.delivery import mail
from app.services.privacy_center import rights

log = logging.getLogger(__name__)
MAX_INTERVAL = 60.0
WORKER_ID = f"{socket.gethostname()}:{os.getpid()}"


def transport(settings: Settings) -> mail.Transport:
    return mail.transport_for(
        settings.smtp_host,
        settings.smtp_port,
        settings.outbox_dir,
        username=settings.smtp_username,
        password=settings.smtp_password,
        starttls=settings.smtp_starttls,
    )


def deliver_once(engine: Engine, settings: Settings) -> mail.Delivery:
    with Session(engine) as session:
        return mail.deliver_due(session, transport(settings), mail_from=settings.sender)


@dataclass(frozen=True)
class Job:
    name: str
    every: timedelta
    run: Callable[[Session, Components], dict[str, object]]


def _retention(session: Session, parts: Components) -> dict[str, object]:
    settings = parts.settings
    periods = retention_service.Periods(
        pending=settings.pending_retention,
        evidence=settings.evidence_retention,
        proof=settings.proof_retention,
    )
    report = retention_service.run(session, periods, key=parts.signing_keys.current)
    return report.as_dict()


def _checkpoint(session: Session, parts: Components) -> dict[str, object]:
    # Every turn signs the head if anything was written since the last checkpoint.
    made = checkpoints.create_if_due(session, parts.signing_keys.current, 1)
    return {"checkpoint": None if made is None else made.signed_seq}


def _overdue_rights(session: Session, parts: Components) -> dict[str, object]:
    late = rights.listing(session, overdue=True)
    if late:
        log.warning(
            "%d rights request(s) overdue: %s", len(late), ", ".join(r.id for r in late[:20])
        )
    return {"overdue": len(late)}


def schedule(settings: Settings) -> list[Job]:
    return [
        Job("retention", settings.retention_interval, _retention),
        Job("checkpoint", settings.checkpoint_interval, _checkpoint),
        Job("rights_overdue", settings.rights_report_interval, _overdue_rights),
    ]


def run_due_jobs(engine: Engine, parts: Components, *, worker: str = WORKER_ID) -> list[str]:
    """Run every job whose turn this worker claims; returns the names of those it ran."""
    ran = []
    for job in schedule(parts.settings):
        with Session(engine) as session:
            if not jobs.claim(session, job.name, job.every, worker):
                continue
        with Session(engine) as session:
            try:
                outcome = json.dumps(job.run(session, parts), default=str)
            except Exception as error:  # one failing job must not stop the others or the mail
                session.rollback()
                log.exception("job %s failed", job.name)
                outcome = json.dumps({"error": type(error).__name__})
        with Session(engine) as session:
            jobs.finish(session, job.name, worker, outcome)
        log.info("job %s ran: %s", job.name, outcome)
        ran.append(job.name)
    return ran


def run(
    engine: Engine,
    settings: Settings,
    stop: threading.Event,
    *,
    interval: float,
    parts: Components | None = None,
) -> int:
    """Deliver (and, given `parts`, run due jobs) until `stop` is set; returns mails sent."""
    sent = 0
    pause = min(max(interval, 0.1), MAX_INTERVAL)
    while not stop.is_set():
        try:
            sent += deliver_once(engine, settings).sent
            if parts is not None:
                run_due_jobs(engine, parts)
        except Exception:  # a database hiccup must not end the loop: the outbox keeps the mail
            log.exception("worker pass failed; retrying")
        stop.wait(pause)
    return sent


def start_inline(engine: Engine, settings: Settings, *, interval: float = 1.0) -> threading.Event:
    """The development server sends mail itself, from a daemon thread; set the event to stop."""
    stop = threading.Event()
    thread = threading.Thread(
        target=run, args=(engine, settings, stop), kwargs={"interval": interval}, daemon=True
    )
    thread.name = "outbox-inline"
    thread.start()
    return stop
