"""Delivering the mail outbox: the `consent-center worker` loop and the inline sender."""

from __future__ import annotations

import logging
import threading

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from app.config import Settings
from app.domain.rules import Rules
from app.services.delivery import mail
from app.services.imports import jobs as imports

log = logging.getLogger(__name__)
MAX_INTERVAL = 60.0


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
        return mail.deliver_due(session, transport(settings), mail_from=settings.mail_from)


def import_once(engine: Engine, rules: Rules, *, max_chunks: int = 5) -> int:
    """Apply up to `max_chunks` chunks of the oldest unfinished import; returns how many.

    A chunk that fails for a reason other than its rows marks the import failed, so one bad
    upload cannot stall the queue.
    """
    done = 0
    with Session(engine) as session:
        import_id = imports.next_due(session)
        while import_id is not None and done < max_chunks:
            try:
                more = imports.apply_next_chunk(session, rules, import_id)
            except Exception as error:
                session.rollback()
                log.exception("import %s failed", import_id)
                imports.fail(session, import_id, f"{type(error).__name__}: {error}")
                break
            done += 1
            if not more:
                break
    return done


def run(
    engine: Engine,
    settings: Settings,
    stop: threading.Event,
    *,
    interval: float,
    rules: Rules | None = None,
) -> int:
    """Deliver (and, given `rules`, import) until `stop` is set; returns how many mails went out."""
    sent = 0
    pause = min(max(interval, 0.1), MAX_INTERVAL)
    while not stop.is_set():
        try:
            sent += deliver_once(engine, settings).sent
        except Exception:  # a database hiccup must not end the loop: the outbox keeps the mail
            log.exception("outbox delivery failed; retrying")
        busy = False
        if rules is not None:
            try:
                busy = import_once(engine, rules) > 0
            except Exception:  # as above: the import resumes at its next chunk
                log.exception("import failed; retrying")
        if not busy:
            stop.wait(pause)
    return sent


def start_inline(
    engine: Engine, settings: Settings, *, interval: float = 1.0, rules: Rules | None = None
) -> threading.Event:
    """The development server sends mail (and applies imports) itself, from a daemon thread;
    set the event to stop."""
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
