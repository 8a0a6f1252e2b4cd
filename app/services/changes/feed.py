"""The changes feed: every consent change in the order it was recorded, with identifiers.

The cursor is the event's seq. Writers take the chain lock and commit in seq order, so once a
reader sees seq n, every seq before it is visible too: paging by `seq > after` misses nothing
and repeats nothing, and stays valid as long as the events are kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, Select, bindparam, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.functions import FunctionElement

from app.domain.changes import (
    ITEM_COLUMNS,
    NOT_CHANGES,
    change_items,
    cursor,
    identifiers_by_subject,
)
from app.domain.vocabulary import Action
from app.models import ConsentEvent, SubjectIdentifier
from app.services.consent.ledger import CHAIN_ID

EVENTS = ConsentEvent.__table__
IDENTIFIERS = SubjectIdentifier.__table__
_ERASE = str(Action.ERASE)


class _NaiveUTC(FunctionElement[datetime]):
    """A timestamp as a naive datetime in UTC: cheaper to read and to spell than an aware one."""

    type = DateTime()
    inherit_cache = True


@compiles(_NaiveUTC)
def _stored_naive(element: _NaiveUTC, compiler: Any, **kw: Any) -> str:
    return str(compiler.process(element.clauses, **kw))  # SQLite keeps UTC without a zone


@compiles(_NaiveUTC, "postgresql")
def _at_utc(element: _NaiveUTC, compiler: Any, **kw: Any) -> str:
    return f"({compiler.process(element.clauses, **kw)} AT TIME ZONE 'UTC')"


def _events() -> Select[Any]:
    """The change events' `ITEM_COLUMNS`, `occurred_at` naive in UTC (for `change_items`)."""
    columns: list[Any] = [EVENTS.c[name] for name in ITEM_COLUMNS]
    columns[1] = _NaiveUTC(EVENTS.c.occurred_at).label("occurred_at")
    return select(*columns).where(
        EVENTS.c.chain_id == CHAIN_ID, EVENTS.c.action.not_in([str(a) for a in NOT_CHANGES])
    )


def _of_subjects(events: Select[Any]) -> Select[Any]:
    """The identifiers of the subjects of `events`, in the order the items list them."""
    subjects = select(events.subquery("events").c.subject_id)
    return (
        select(IDENTIFIERS.c.subject_id, IDENTIFIERS.c.kind, IDENTIFIERS.c.value)
        .where(IDENTIFIERS.c.subject_id.in_(subjects))
        .order_by(IDENTIFIERS.c.kind, IDENTIFIERS.c.value)
    )


def _items(
    session: Session, events: Select[Any], identifiers: Select[Any], params: dict[str, Any]
) -> list[dict[str, Any]]:
    """The items of `events`, and a second read for the identifiers of their subjects (joined,
    each event would come back once per identifier of its subject)."""
    rows = session.execute(events, params).all()
    held = {}
    if any(row[2] is not None and row[7] != _ERASE for row in rows):
        held = identifiers_by_subject(session.execute(identifiers, params).all())
    return change_items(rows, held)


# Built once: only their parameters change from page to page.
_PAGE = (
    _events()
    .where(EVENTS.c.seq > bindparam("after"))
    .order_by(EVENTS.c.seq)
    .limit(bindparam("limit"))
)
_PAGE_IDENTIFIERS = _of_subjects(_PAGE)


def page(session: Session, after: int, limit: int) -> tuple[list[dict[str, Any]], str]:
    """Up to `limit` changes after the cursor, and the cursor to ask with next (never None)."""
    items = _items(session, _PAGE, _PAGE_IDENTIFIERS, {"after": after, "limit": limit})
    return items, items[-1]["cursor"] if items else cursor(after)


def items_for(session: Session, seqs: Sequence[int]) -> dict[int, dict[str, Any]]:
    """The changes items of the given events, by seq in seq order (for webhook deliveries)."""
    if not seqs:
        return {}
    events = _events().where(EVENTS.c.seq.in_(list(seqs))).order_by(EVENTS.c.seq)
    items = _items(session, events, _of_subjects(events), {})
    return {int(item["cursor"]): item for item in items}
