"""Delivering the outboxes (mail and webhooks): the `consent-center worker` loop and the
inline sender of the development server."""

from __future__ import annotations

import logging
import threading

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from app.config import Settings
from app.services.delivery import mail, webhooks

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


def run(engine: Engine, settings: Settings, stop: threading.Event, *, interval: float) -> int:
    """Deliver until `stop` is set; returns how many messages and webhooks went out.

    A pass that sent something is followed at once by the next: only an idle outbox waits.
    """
    sent = 0
    pause = min(max(interval, 0.1), MAX_INTERVAL)
    outgoing = sender(settings)
    try:
        while not stop.is_set():
            done = 0
            try:
                done = deliver_once(engine, settings).sent
                done += deliver_webhooks(engine, settings, outgoing).sent
            except Exception:  # a database hiccup must not end the loop: the outboxes keep it
                log.exception("outbox delivery failed; retrying")
            sent += done
            if not done:
                stop.wait(pause)
    finally:
        outgoing.close()
    return sent


def start_inline(engine: Engine, settings: Settings, *, interval: float = 1.0) -> threading.Event:
    """The development server sends mail and webhooks itself, from a daemon thread; set the
    event to stop."""
    stop = threading.Event()
    thread = threading.Thread(
        target=run, args=(engine, settings, stop), kwargs={"interval": interval}, daemon=True
    )
    thread.name = "outbox-inline"
    thread.start()
    return stop
