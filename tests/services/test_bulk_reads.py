"""The set-based reads' array parameter: any list of strings arrives as it was sent."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
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
