"""Forgeries a verifier must catch, done the way a forger with database access would."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.domain import chain
from app.models import ChainHead, ConsentEvent


def rewrite_from(session: Session, seq: int, **changes: str) -> None:
    """Change event `seq` and recompute every later hash and the head, as a forger would."""
    rows = session.scalars(
        select(ConsentEvent).where(ConsentEvent.seq >= seq).order_by(ConsentEvent.seq)
    ).all()
    prev = session.scalar(select(ConsentEvent.hash).where(ConsentEvent.seq == seq - 1))
    for row in rows:
        for name, value in changes.items() if row.seq == seq else ():
            setattr(row, name, value)
        row.prev_hash = prev or chain.GENESIS_HASH
        row.hash = chain.event_hash(row.record())
        prev = row.hash
    head = session.get(ChainHead, "main")
    assert head is not None
    head.last_hash = str(prev)
    session.commit()
