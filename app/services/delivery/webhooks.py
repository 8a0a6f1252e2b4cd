"""Webhooks: receivers, the delivery outbox written with each change, and the sender.

`enqueue` runs inside `ledger.append`, so a delivery row commits with its change or not at
all: a crash loses none. `deliver_due` (the worker, or the dev server's thread) sends them,
one receiver at a time under a lease so two workers never interleave one receiver's
deliveries: each receiver gets its changes in ledger order, the next only after the one
before it was answered 2xx. Bodies are signed per Standard Webhooks; answers are not kept.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import delete, or_, select, text, update
from sqlalchemy.orm import Session
from standardwebhooks import Webhook as Signer

from app.domain.changes import (
    EventType,
    event_type,
    is_change,
    is_refused_address,
    new_secret,
    retry_delay,
    validate_url,
)
from app.domain.errors import InvalidWebhookError, NotFoundError
from app.domain.vocabulary import Action, Method
from app.models import Webhook, WebhookDelivery, new_id, utcnow
from app.services.changes import feed

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"
MAX_ANSWER = 64 * 1024  # read (and drop) this much of an answer to keep the connection
USER_AGENT = "consent-center-webhooks/1"
# Successful outcomes are written in groups: a crash in between re-sends at most this many
# deliveries, each with its webhook-id, which receivers deduplicate by.
OUTCOMES_PER_COMMIT = 20


@dataclass(frozen=True)
class Registered:
    webhook: Webhook
    secret: str


def _event_types(events: Sequence[str]) -> str:
    known = {str(t) for t in EventType}
    unknown = sorted(set(events) - known)
    if unknown or not events:
        message = f"Event types are {', '.join(sorted(known))}."
        raise InvalidWebhookError(message, {"events": [message]})
    return " ".join(sorted(set(events)))


def _refuse_literal(url: str, *, allow_private: bool) -> None:
    """A literal private address is refused at once; names are checked when sending."""
    host = urlsplit(url).hostname or ""
    try:
        refused = is_refused_address(host)
    except ValueError:
        return
    if refused and not allow_private:
        message = "Private, loopback and link-local addresses are refused."
        raise InvalidWebhookError(message, {"url": [message]})


def register(
    session: Session,
    url: str,
    events: Sequence[str],
    *,
    actor: str,
    allow_private: bool,
    now: datetime | None = None,
) -> Registered:
    validate_url(url, allow_private=allow_private)
    _refuse_literal(url, allow_private=allow_private)
    secret = new_secret()
    webhook = Webhook(
        id=new_id(),
        url=url,
        events=_event_types(events),
        secret=secret,
        created_at=now or utcnow(),
        created_by=actor,
    )
    session.add(webhook)
    session.commit()
    return Registered(webhook, secret)


def listed(session: Session) -> list[Webhook]:
    return list(session.scalars(select(Webhook).order_by(Webhook.created_at, Webhook.id)))


def get(session: Session, webhook_id: str) -> Webhook:
    webhook = session.get(Webhook, webhook_id)
    if webhook is None:
        raise NotFoundError(f"No webhook {webhook_id}.")
    return webhook


def remove(session: Session, webhook_id: str) -> None:
    get(session, webhook_id)
    session.execute(delete(WebhookDelivery).where(WebhookDelivery.webhook_id == webhook_id))
    session.execute(delete(Webhook).where(Webhook.id == webhook_id))
    session.commit()


def rotate_secret(
    session: Session, webhook_id: str, *, overlap: timedelta, now: datetime | None = None
) -> Registered:
    """A new secret; the old one still signs too (a second signature) for `overlap`."""
    now = now or utcnow()
    webhook = get(session, webhook_id)
    webhook.previous_secret = webhook.secret
    webhook.previous_secret_expires_at = now + overlap
    webhook.secret = new_secret()
    session.commit()
    return Registered(webhook, webhook.secret)


def deliveries(
    session: Session, webhook_id: str, *, limit: int, status: str | None = None
) -> list[WebhookDelivery]:
    """The receiver's delivery log, newest change first."""
    get(session, webhook_id)
    query = select(WebhookDelivery).where(WebhookDelivery.webhook_id == webhook_id)
    if status:
        query = query.where(WebhookDelivery.status == status)
    return list(session.scalars(query.order_by(WebhookDelivery.event_seq.desc()).limit(limit)))


def redeliver(
    session: Session, webhook_id: str, delivery_id: str, *, now: datetime | None = None
) -> WebhookDelivery:
    """Send a delivery again (same webhook-id, so a receiver can tell); re-enables its receiver.

    Changes recorded while a receiver was disabled were not queued for it: the feed has them.
    """
    now = now or utcnow()
    webhook = get(session, webhook_id)
    row = session.get(WebhookDelivery, delivery_id)
    if row is None or row.webhook_id != webhook_id:
        raise NotFoundError(f"No delivery {delivery_id} for webhook {webhook_id}.")
    if row.status == FAILED:
        row.attempts = 0  # a fresh day of retries, not one attempt and off again
    row.status, row.next_attempt_at, row.last_error = PENDING, now, None
    webhook.disabled_at = webhook.disabled_reason = None
    session.commit()
    return row


def enqueue(session: Session, events: Iterable[Mapping[str, Any]], now: datetime) -> None:
    """Queue each change for every receiver that wants its type, in the caller's transaction.

    `events` are the plain records `ledger.append` wrote (keyed by `chain.FIELDS`' names).
    """
    changes = [event for event in events if is_change(event["action"])]
    if not changes:
        return
    receivers = [
        (webhook_id, types.split())
        for webhook_id, types in session.execute(
            select(Webhook.id, Webhook.events).where(Webhook.disabled_at.is_(None))
        )
    ]
    for event in changes:
        kind = str(event_type(event["action"]))
        session.add_all(
            WebhookDelivery(
                id=f"msg_{uuid.uuid4().hex}",
                webhook_id=webhook_id,
                event_seq=event["seq"],
                event_type=kind,
                status=PENDING,
                attempts=0,
                created_at=now,
                next_attempt_at=now,
            )
            for webhook_id, types in receivers
            if kind in types
        )


# PostgreSQL: one change's deliveries in one statement that reads the receivers itself, for
# `ledger`'s pipelined write (which sends it without waiting for an answer): the rows `enqueue`
# adds, an id of the same form (`msg_` and a random UUID's hex).
QUEUE_SQL = (
    f"INSERT INTO {WebhookDelivery.__tablename__} (id, webhook_id, event_seq, event_type,"
    " status, attempts, created_at, next_attempt_at)"
    " SELECT 'msg_' || replace(gen_random_uuid()::text, '-', ''), id, %(seq)s, %(kind)s::text,"
    f" '{PENDING}', 0, %(now)s, %(now)s FROM {Webhook.__tablename__}"
    " WHERE disabled_at IS NULL AND %(kind)s::text = ANY(regexp_split_to_array(events, '\\s+'))"
)


def queued(events: Iterable[Mapping[str, Any]], now: datetime) -> list[dict[str, Any]]:
    """`QUEUE_SQL`'s parameters for each change among `events` (as `ledger.append` returns
    them)."""
    return [
        {"seq": event["seq"], "kind": str(event_type(event["action"])), "now": now}
        for event in events
        if is_change(event["action"])
    ]


# ---- sending ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    status: int | None
    latency_ms: int
    error: str | None = None

    @property
    def is_ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class TargetRefusedError(OSError):
    pass


def resolve(host: str, port: int, *, allow_private: bool) -> str:
    """The address to connect to, checked after DNS resolution (so a name that points at
    127.0.0.1 is caught), and then used for the connection itself (so a second lookup
    cannot swap it)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses = [str(info[4][0]) for info in infos]
    if not addresses:
        raise TargetRefusedError(f"{host} does not resolve")
    refused = [a for a in addresses if is_refused_address(a)]
    if refused and not allow_private:
        raise TargetRefusedError(f"{host} resolves to a refused address ({refused[0]})")
    return addresses[0]


class _PinnedHTTP(http.client.HTTPConnection):
    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self.address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self.address, self.port), self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _PinnedHTTPS(http.client.HTTPSConnection):
    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self.address = address

    def connect(self) -> None:
        raw = socket.create_connection((self.address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(raw, server_hostname=self.host)  # type: ignore[attr-defined]


class Sender:
    """POSTs to receivers over kept-alive connections; follows no redirect (http.client
    never does), gives up after `timeout` seconds of silence, and keeps no answer body."""

    def __init__(self, *, allow_private: bool, timeout: float) -> None:
        self.allow_private, self.timeout = allow_private, timeout
        self._connections: dict[tuple[str, str, int], http.client.HTTPConnection] = {}

    def close(self) -> None:
        for connection in self._connections.values():
            connection.close()
        self._connections.clear()

    def send(self, url: str, headers: Mapping[str, str], body: bytes) -> Outcome:
        started = time.monotonic()
        parts = urlsplit(url)
        scheme, host = parts.scheme, parts.hostname or ""
        port = parts.port or (443 if scheme == "https" else 80)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        key = (scheme, host, port)

        def elapsed() -> int:
            return int((time.monotonic() - started) * 1000)

        for fresh in (key not in self._connections, True):
            try:
                connection = self._connections.get(key)
                if connection is None:
                    address = resolve(host, port, allow_private=self.allow_private)
                    kind = _PinnedHTTPS if scheme == "https" else _PinnedHTTP
                    connection = self._connections[key] = kind(host, port, address, self.timeout)
                connection.request("POST", path, body=body, headers=dict(headers))
                answer = connection.getresponse()
                answer.read(MAX_ANSWER)
                if not answer.isclosed():
                    self._drop(key)  # more than we read: do not reuse a half-read connection
                return Outcome(answer.status, elapsed())
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self._drop(key)
                if fresh:
                    return Outcome(None, elapsed(), "the receiver closed the connection")
                # A kept-alive connection the receiver had closed while idle: once more, anew.
            except (OSError, http.client.HTTPException) as error:
                self._drop(key)
                return Outcome(None, elapsed(), f"{type(error).__name__}: {error}"[:500])
        raise AssertionError("unreachable: the second pass always returns")

    def _drop(self, key: tuple[str, str, int]) -> None:
        connection = self._connections.pop(key, None)
        if connection is not None:
            connection.close()


def signature(webhook: Webhook, message_id: str, sent_at: datetime, body: str) -> str:
    """v1 signatures, space-separated: the current secret's, and during a rotation the old one's."""
    secrets = [webhook.secret]
    expires = webhook.previous_secret_expires_at
    if webhook.previous_secret and expires is not None and sent_at < expires:
        secrets.append(webhook.previous_secret)
    return " ".join(Signer(s).sign(message_id, sent_at, body) for s in secrets)


def payload(kind: str, item: Mapping[str, Any]) -> str:
    return json.dumps(
        {"type": kind, "timestamp": item["occurred_at"], "data": item},
        separators=(",", ":"),
        ensure_ascii=False,
    )


def headers_for(webhook: Webhook, message_id: str, sent_at: datetime, body: str) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "webhook-id": message_id,
        "webhook-timestamp": str(int(sent_at.timestamp())),
        "webhook-signature": signature(webhook, message_id, sent_at, body),
    }


@dataclass(frozen=True)
class Delivered:
    sent: int
    failed: int
    disabled: int


def deliver_due(
    session: Session,
    sender: Sender,
    *,
    lease: timedelta,
    now: datetime | None = None,
    batch: int = 200,
) -> Delivered:
    """Send what is due, receiver by receiver, committing the outcomes as they come.

    A batch, as the mail outbox is: each claim, each group of outcomes, each release and each
    switch-off commits on its own, so a crash redoes only the group it cut off.
    """
    start, started = now or utcnow(), time.monotonic()

    def clock() -> datetime:
        return start + timedelta(seconds=time.monotonic() - started)

    due = _due_receivers(session, start)
    session.commit()
    sent = failed = disabled = 0
    # This worker owns the rows it sends (the receiver's lease), so what it loaded stays true
    # across its commits: no reload of every row after each outcome.
    expire, session.expire_on_commit = session.expire_on_commit, False
    try:
        for webhook_id in due:
            claimed = _claim(session, webhook_id, clock(), lease)
            session.commit()
            if not claimed:
                continue
            webhook = get(session, webhook_id)
            rows = _queue(session, webhook_id, batch)
            items = feed.items_for(session, [row.event_seq for row in rows])
            unrecorded, switched_off = 0, False
            for row in rows:
                if row.next_attempt_at > clock():
                    break  # the oldest waits for its retry, and everything after it waits too
                verdict = _attempt(sender, webhook, row, items.get(row.event_seq), clock, lease)
                if verdict == DELIVERED:
                    sent, unrecorded = sent + 1, unrecorded + 1
                    if unrecorded == OUTCOMES_PER_COMMIT:
                        _relax(session)
                        session.commit()
                        unrecorded = 0
                    continue
                if verdict == GONE:
                    continue
                failed += 1
                if verdict == EXHAUSTED:
                    session.commit()
                    from app.services.consent import ledger  # the ledger calls enqueue above

                    head = ledger.lock(session)
                    _disable(session, head, webhook_id, row, clock())
                    disabled, switched_off = disabled + 1, True
                break
            if not switched_off:  # an event of the trail commits durably
                _relax(session)
            _release(session, webhook_id)
            session.commit()
    finally:
        session.expire_on_commit = expire
    return Delivered(sent, failed, disabled)


GONE, RETRY, EXHAUSTED = "gone", "retry", "exhausted"


def _due_receivers(session: Session, now: datetime) -> list[str]:
    return list(
        session.scalars(
            select(WebhookDelivery.webhook_id)
            .join(Webhook, Webhook.id == WebhookDelivery.webhook_id)
            .where(
                WebhookDelivery.status == PENDING,
                WebhookDelivery.next_attempt_at <= now,
                Webhook.disabled_at.is_(None),
                or_(Webhook.lease_until.is_(None), Webhook.lease_until < now),
            )
            .distinct()
        )
    )


def _claim(session: Session, webhook_id: str, now: datetime, lease: timedelta) -> bool:
    claimed = session.execute(
        update(Webhook)
        .where(
            Webhook.id == webhook_id,
            Webhook.disabled_at.is_(None),
            or_(Webhook.lease_until.is_(None), Webhook.lease_until < now),
        )
        .values(lease_until=now + lease)
    )
    return bool(claimed.rowcount)  # type: ignore[attr-defined]


def _release(session: Session, webhook_id: str) -> None:
    session.execute(update(Webhook).where(Webhook.id == webhook_id).values(lease_until=None))


def _queue(session: Session, webhook_id: str, batch: int) -> list[WebhookDelivery]:
    return list(
        session.scalars(
            select(WebhookDelivery)
            .where(WebhookDelivery.webhook_id == webhook_id, WebhookDelivery.status == PENDING)
            .order_by(WebhookDelivery.event_seq, WebhookDelivery.id)
            .limit(batch)
        )
    )


def _attempt(
    sender: Sender,
    webhook: Webhook,
    row: WebhookDelivery,
    item: Mapping[str, Any] | None,
    clock: Any,
    lease: timedelta,
) -> str:
    """Send one delivery and note its outcome on the row: delivered, retry, exhausted, gone."""
    if item is None:  # retention removed the event before it could be sent
        row.status, row.last_error = FAILED, "the change is no longer held"
        return GONE
    body = payload(row.event_type, item)
    headers = headers_for(webhook, row.id, clock().replace(microsecond=0), body)
    outcome = sender.send(webhook.url, headers, body.encode())
    now = clock()
    row.attempts += 1
    row.last_attempt_at, row.response_status = now, outcome.status
    row.latency_ms = outcome.latency_ms
    row.last_error = outcome.error or (None if outcome.is_ok else f"HTTP {outcome.status}")
    if webhook.lease_until is None or webhook.lease_until - now < lease / 2:
        webhook.lease_until = now + lease  # renewed while sending, not at every delivery
    if outcome.is_ok:
        row.status, row.delivered_at = DELIVERED, now
        return DELIVERED
    delay = retry_delay(row.attempts)
    if delay is None:
        row.status = FAILED
        return EXHAUSTED
    row.next_attempt_at = now + delay
    return RETRY


def _relax(session: Session) -> None:
    """On PostgreSQL outcomes commit without waiting for the disk: one lost in a database
    crash only means the delivery goes out again, with the same webhook-id. The change and
    its delivery row were committed durably, by the ledger, long before."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SET LOCAL synchronous_commit = off"))


def _disable(
    session: Session, head: Any, webhook_id: str, row: WebhookDelivery, now: datetime
) -> None:
    """After the last retry the receiver is switched off, and that is an event in the trail."""
    from app.services.consent import ledger

    webhook = get(session, webhook_id)
    webhook.disabled_at = now
    reason = f"delivery {row.id} failed {row.attempts} times: {row.last_error}"
    webhook.disabled_reason = reason[:500]
    ledger.append(
        session,
        head,
        ledger.Act(actor="system:webhooks", method=Method.SYSTEM),
        [
            ledger.Draft(
                Action.WEBHOOK_DISABLED,
                details={"webhook_id": webhook_id, "url": webhook.url, "delivery_id": row.id},
            )
        ],
        now=now,
    )
