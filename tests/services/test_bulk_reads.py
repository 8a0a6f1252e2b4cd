"""The set-based reads' array parameter: any list of strings arrives as it was sent."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import event, exc
from sqlalchemy.orm import Session

from app.services.consent import bulk_reads

_EACHED = bulk_reads.Statement("SELECT w.value FROM EACH(:values) AS w")
# Text PostgreSQL can store (no NUL), with the characters an array literal treats specially.
_TEXT = st.text(st.characters(blacklist_characters="\x00", blacklist_categories=["Cs"]))
_TRICKY = ["", " ", "a,b", "{x}", '"', "\\", '\\"', "NULL", "null", "é 字 😀", " padded "]


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.lists(st.one_of(st.sampled_from(_TRICKY), _TEXT), max_size=12))
def test_every_string_comes_back_as_it_was_sent(session: Session, values: list[str]) -> None:
    rows = bulk_reads.fetch(session, _EACHED, {"values": values})
    assert [row[0] for row in rows] == values
    session.rollback()


def test_a_set_based_read_is_seen_by_the_listeners_and_fails_as_sqlalchemys_error(
    session: Session,
) -> None:
    """The reads run on the driver's connection, not through `exec_driver_sql`: the engine's
    statement listeners still see them, and a driver error is still SQLAlchemy's (app/errors
    answers an outage with a 503)."""
    seen: list[str] = []

    def note(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement.split()[0])

    engine = session.get_bind()
    session.connection()  # the transaction begun (on SQLite a BEGIN the listener would see)
    event.listen(engine, "before_cursor_execute", note)
    try:
        assert [row[0] for row in bulk_reads.fetch(session, _EACHED, {"values": ["a"]})] == ["a"]
        broken = bulk_reads.Statement("SELECT w.value FROM EACH(:values) AS w JOIN nowhere")
        with pytest.raises(exc.DBAPIError):
            bulk_reads.fetch(session, broken, {"values": ["a"]})
    finally:
        event.remove(engine, "before_cursor_execute", note)
    assert seen == ["SELECT", "SELECT"]
    session.rollback()
