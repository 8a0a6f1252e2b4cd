"""Delivering the mail outbox: the `consent-center worker` loop and the inline sender."""

from __future__ import annotations

import logging
import threading

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from app.config import Settings
from app.services.delivery import mail

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
        return mail.deliver_due(session, transport(settings), mail_from=settings.sender)


def run(engine: Engine, settings: Settings, stop: threading.Event, *, interval: float) -> int:
    """Deliver until `stop` is set; returns how many messages went out."""
    sent = 0
    pause = min(max(interval, 0.1), MAX_INTERVAL)
    while not stop.is_set():
        try:
            sent += deliver_once(engine, settings).sent
        except Exception:  # a database hiccup must not end the loop: the outbox keeps the mail
            log.exception("outbox delivery failed; retrying")
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
