"""The service's own state for operators: queues, the chain head, when jobs last ran.

Read when /metrics is scraped (one small indexed query each), never on a request's path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import ColumnElement, func, select, text
from sqlalchemy.orm import InstrumentedAttribute, Session

from app.domain.vocabulary import Action
from app.models import ChainHead, ConsentEvent, OutboxMessage, WebhookDelivery
from app.services.consent.ledger import CHAIN_ID


@dataclass(frozen=True)
class Queue:
    depth: int
    oldest_at: datetime | None


@dataclass(frozen=True)
class Snapshot:
    # Every outbox by name ("mail"; webhook deliveries join it once they have a table).
    queues: dict[str, Queue] = field(default_factory=dict)
    head_seq: int = 0
    last_checkpoint_at: datetime | None = None
    last_retention_at: datetime | None = None


# Each outbox: its name, what "waiting" means, and when a waiting item was made. The oldest
# waiting webhook delivery's age is the webhook lag: how far receivers trail the ledger.
QUEUES: dict[str, tuple[ColumnElement[bool], InstrumentedAttribute[datetime]]] = {
    "mail": (OutboxMessage.status == "queued", OutboxMessage.created_at),
    "webhooks": (WebhookDelivery.status == "pending", WebhookDelivery.created_at),
}


def snapshot(session: Session) -> Snapshot:
    queues = {}
    for name, (waiting, made_at) in QUEUES.items():
        depth, oldest = session.execute(
            select(func.count(), func.min(made_at)).where(waiting)
        ).one()
        queues[name] = Queue(depth, oldest)
    head = session.get(ChainHead, CHAIN_ID)
    return Snapshot(
        queues=queues,
        head_seq=head.last_seq if head else 0,
        last_checkpoint_at=_last(session, Action.CHECKPOINT),
        last_retention_at=_last(session, Action.RETENTION_RUN),
    )


def replica_lag_seconds(replica: Session) -> float | None:
    """How far a PostgreSQL streaming replica trails the primary (0 when it is not replaying,
    e.g. a read-only role on the primary); None where the database cannot say (SQLite)."""
    if replica.get_bind().dialect.name != "postgresql":
        return None
    lag = replica.scalar(
        text(
            "SELECT CASE WHEN pg_is_in_recovery() THEN COALESCE(EXTRACT(EPOCH FROM"
            " now() - pg_last_xact_replay_timestamp()), 0) ELSE 0 END"
        )
    )
    return float(lag or 0)


def _last(session: Session, action: Action) -> datetime | None:
    return session.scalar(
        select(ConsentEvent.occurred_at)
        .where(ConsentEvent.action == str(action))
        .order_by(ConsentEvent.seq.desc())
        .limit(1)
    )
