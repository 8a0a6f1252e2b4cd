"""The changes feed: every consent change in the order it was recorded, with identifiers.

The cursor is the event's seq. Writers take the chain lock and commit in seq order, so once a
reader sees seq n, every seq before it is visible too: paging by `seq > after` misses nothing
and repeats nothing, and stays valid as long as the events are kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from app.domain.changes import ITEM_COLUMNS, NOT_CHANGES, change_item, cursor
from app.models import ConsentEvent, SubjectIdentifier
from app.services.consent.ledger import CHAIN_ID

EVENTS = ConsentEvent.__table__
IDENTIFIERS = SubjectIdentifier.__table__


def _items(session: Session, events: Select[Any]) -> list[dict[str, Any]]:
    """The items of the events `events` selects, their identifiers joined in the same read."""
    page = events.subquery("page")
    query = (
        select(page, IDENTIFIERS.c.kind, IDENTIFIERS.c.value)
        .outerjoin(IDENTIFIERS, IDENTIFIERS.c.subject_id == page.c.subject_id)
        .order_by(page.c.seq, IDENTIFIERS.c.kind, IDENTIFIERS.c.value)
    )
    items: list[dict[str, Any]] = []
    identifiers: list[tuple[str, str]] = []
    current: Any = None
    for row in session.execute(query).all():
        if current is not None and row[0] != current[0]:
            items.append(change_item(current[:-2], identifiers))
            identifiers = []
        current = row
        if row[-2] is not None:
            identifiers.append((row[-2], row[-1]))
    if current is not None:
        items.append(change_item(current[:-2], identifiers))
    return items


def _events() -> Select[Any]:
    return select(*(EVENTS.c[name] for name in ITEM_COLUMNS)).where(
        EVENTS.c.chain_id == CHAIN_ID, EVENTS.c.action.not_in([str(a) for a in NOT_CHANGES])
    )


def page(session: Session, after: int, limit: int) -> tuple[list[dict[str, Any]], str]:
    """Up to `limit` changes after the cursor, and the cursor to ask with next (never None)."""
    events = _events().where(EVENTS.c.seq > after).order_by(EVENTS.c.seq).limit(limit)
    items = _items(session, events)
    return items, items[-1]["cursor"] if items else cursor(after)


def items_for(session: Session, seqs: Sequence[int]) -> dict[int, dict[str, Any]]:
    """The changes items of the given events, by seq (for webhook deliveries)."""
    if not seqs:
        return {}
    events = _events().where(EVENTS.c.seq.in_(list(seqs)))
    return {int(item["cursor"]): item for item in _items(session, events)}
