"""`consent-center worker`: the mail and webhook outboxes, and the scheduled jobs (retention,
checkpoints, the overdue rights report), each run once per turn however many workers there are."""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from joserfc.jwk import ECKey
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from app.components import Components
from app.config import Settings
from app.domain.rules import Rules
from app.models import ImportJob
from app.services import jobs
from app.services.audit import checkpoints
from app.services.audit import retention as retention_service
from app.services.delivery import mail, webhooks
from app.services.imports import jobs as imports
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


def sender(settings: Settings) -> webhooks.Sender:
    return webhooks.Sender(
        allow_private=settings.webhook_allow_private,
        timeout=settings.webhook_timeout.total_seconds(),
    )


def deliver_webhooks(
    engine: Engine, settings: Settings, sender: webhooks.Sender
) -> webhooks.Delivered:
    with Session(engine) as session:
        return webhooks.deliver_due(session, sender, lease=settings.webhook_lease)


def run_import(
    session: Session,
    rules: Rules,
    import_id: str,
    *,
    progress: Callable[[ImportJob], None] | None = None,
) -> ImportJob:
    """Apply every chunk left of one import, a transaction each (the CLI, in the foreground)."""
    with imports.Ahead() as ahead:
        while imports.apply_next_chunk(session, rules, import_id, ahead=ahead):
            if progress is not None:
                progress(imports.report(session, import_id).job)
    imports.analyze_written(session, import_id)
    job = imports.report(session, import_id).job
    if progress is not None:
        progress(job)
    return job


def import_once(
    engine: Engine, rules: Rules, *, max_chunks: int = 5, ahead: imports.Ahead | None = None
) -> int:
    """Apply up to `max_chunks` chunks of the oldest unfinished import; returns how many.
    With `ahead` (which the worker keeps between passes), each chunk's successor is parsed
    while the chunk is written.

    A chunk that fails for a reason other than its rows marks the import failed, so one bad
    upload cannot stall the queue.
    """
    done = 0
    with Session(engine) as session:
        import_id = imports.next_due(session)
        while import_id is not None and done < max_chunks:
            try:
                more = imports.apply_next_chunk(session, rules, import_id, ahead=ahead)
            except Exception as error:
                session.rollback()
                log.exception("import %s failed", import_id)
                imports.fail(session, import_id, f"{type(error).__name__}: {error}")
                break
            done += 1
            if not more:
                imports.analyze_written(session, import_id)
                break
    return done


@dataclass(frozen=True)
class Job:
    name: str
    every: timedelta
    run: Callable[[Session, Components], dict[str, object]]


def retention(
    session: Session, settings: Settings, key: ECKey | None
) -> retention_service.RunReport:
    """One retention run by the configured periods: the scheduled job's and
    `consent-center retention run`'s."""
    periods = retention_service.Periods(
        pending=settings.pending_retention,
        evidence=settings.evidence_retention,
        proof=settings.proof_retention,
        access_log=settings.access_log_retention,
        mail=settings.mail_retention,
        webhook_log=settings.webhook_log_retention,
    )
    mail_files = None if settings.smtp_host else settings.outbox_dir  # the development outbox
    return retention_service.run(session, periods, key=key, mail_files=mail_files)


def _retention(session: Session, parts: Components) -> dict[str, object]:
    return retention(session, parts.settings, parts.signing_keys.current).as_dict()


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
    rules: Rules | None = None,
) -> int:
    """Deliver, apply imports (given `parts` or `rules`) and run due jobs (given `parts`)
    until `stop` is set; returns how many mails and webhooks went out. A pass that did
    something is followed at once by the next: only idle outboxes and queues wait."""
    sent = 0
    pause = min(max(interval, 0.1), MAX_INTERVAL)
    outgoing = sender(settings)
    ahead = imports.Ahead()
    try:
        while not stop.is_set():
            done = 0
            try:
                done = deliver_once(engine, settings).sent
                done += deliver_webhooks(engine, settings, outgoing).sent
                if parts is not None:
                    run_due_jobs(engine, parts)
            except Exception:  # a database hiccup must not end the loop: the outboxes keep it
                log.exception("worker pass failed; retrying")
            sent += done
            busy = done > 0
            import_rules = parts.rules if parts is not None else rules
            if import_rules is not None:
                try:
                    busy = import_once(engine, import_rules, ahead=ahead) > 0 or busy
                except Exception:  # as above: the import resumes at its next chunk
                    log.exception("import failed; retrying")
            if not busy:
                stop.wait(pause)
    finally:
        outgoing.close()
        ahead.close()
    return sent


def start_inline(
    engine: Engine, settings: Settings, *, interval: float = 1.0, rules: Rules | None = None
) -> threading.Event:
    """The development server sends mail and webhooks (and applies imports) itself, from a
    daemon thread; set the event to stop."""
    stop = threading.Event()
    thread = threading.Thread(
        target=run,
        args=(engine, settings, stop),
        kwargs={"interval": interval, "rules": rules},
        daemon=True,
    )
    thread.name = "outbox-inline"
    thread.start()
    return stop
