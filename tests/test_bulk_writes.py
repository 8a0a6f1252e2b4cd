"""The bulk writes: `insert_many` and `upsert_many` leave what row-by-row statements would,
in the caller's transaction, whether they go as executemany or as COPY (PostgreSQL, many rows)."""

from __future__ import annotations

from typing import Any, cast

import pytest
from sqlalchemy import Table, select
from sqlalchemy.orm import Session

from app.database import COPY_FROM, insert_many, upsert_many
from app.models import RateLimitCounter

COUNTERS = cast(Table, RateLimitCounter.__table__)


def _rows(keys: range, count: int) -> list[dict[str, Any]]:
    return [{"key": f"k{n}", "count": count, "expires_at": float(n)} for n in keys]


def _stored(session: Session) -> dict[str, tuple[int, float]]:
    columns = COUNTERS.c
    rows = session.execute(select(columns.key, columns.count, columns.expires_at))
    return {key: (count, expires_at) for key, count, expires_at in rows}


@pytest.mark.parametrize("size", [3, COPY_FROM * 2])
def test_an_upsert_inserts_the_new_and_updates_only_the_named_columns(
    session: Session, size: int
) -> None:
    insert_many(session, COUNTERS, _rows(range(size), count=1))
    # Half of these are there already: their count changes, their expiry stays.
    changed = [row | {"expires_at": -1.0} for row in _rows(range(size // 2, size * 3 // 2), 2)]
    upsert_many(session, COUNTERS, changed, keys=["key"], update=["count"])
    # A second batch in the same transaction (PostgreSQL's staging table is reused).
    upsert_many(
        session,
        COUNTERS,
        _rows(range(size * 2, size * 2 + size), 3),
        keys=["key"],
        update=["count"],
    )
    session.commit()

    expected = {f"k{n}": (1, float(n)) for n in range(size // 2)}
    expected |= {f"k{n}": (2, float(n)) for n in range(size // 2, size)}
    expected |= {f"k{n}": (2, -1.0) for n in range(size, size * 3 // 2)}
    expected |= {f"k{n}": (3, float(n)) for n in range(size * 2, size * 3)}
    assert _stored(session) == expected


def test_an_upsert_rolled_back_leaves_nothing(session: Session) -> None:
    upsert_many(session, COUNTERS, _rows(range(COPY_FROM * 2), 1), keys=["key"], update=["count"])
    session.rollback()
    assert _stored(session) == {}
    upsert_many(session, COUNTERS, _rows(range(COPY_FROM), 5), keys=["key"], update=["count"])
    session.commit()
    assert set(_stored(session).values()) == {(5, float(n)) for n in range(COPY_FROM)}
