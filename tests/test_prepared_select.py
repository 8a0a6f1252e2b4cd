"""`database.PreparedSelect` gives the rows SQLAlchemy gives, for every length of its lists,
and raises the errors SQLAlchemy raises, through a session's transaction and straight on a
kept connection's driver (`database.Direct`, the fast check's reads) alike."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, bindparam, column, event, exc, func, insert, select, table, text
from sqlalchemy.orm import Session

from app.api.fastcheck import Reader
from app.database import DIRECT, Direct, PreparedSelect, make_unpooled_engine
from app.models import ConsentState, Subject, SubjectIdentifier, Suppression
from app.services.consent import checks, suppression

T0 = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
CHANNELS = ["*", "email", "sms"]
CATEGORIES = ["", "newsletter", "offers"]


@pytest.fixture
def people(session: Session) -> Session:
    """Three subjects, two identifiers each (one confirmed), standings on several topics."""
    for n in range(3):
        subject_id = f"00000000-0000-4000-8000-00000000000{n}"
        session.execute(
            insert(Subject), [{"id": subject_id, "created_at": T0, "country": "DE" if n else None}]
        )
        session.execute(
            insert(SubjectIdentifier),
            [
                {
                    "hmac": f"{n}{kind}".ljust(64, "0"),
                    "id": f"00000000-0000-4000-9000-0000000000{n}{i}",
                    "subject_id": subject_id,
                    "kind": kind,
                    "value": f"p{n}@example.org" if kind == "email" else f"crm-{n}",
                    "created_at": T0,
                    "confirmed_at": T0 + timedelta(days=n) if i == 0 else None,
                }
                for i, kind in enumerate(("email", "external_id"))
            ],
        )
        session.execute(
            insert(ConsentState),
            [
                {
                    "subject_id": subject_id,
                    "channel": channel,
                    "category": category,
                    "purpose": "",
                    "status": ("granted", "withdrawn")[(n + i) % 2],
                    "event_seq": 10 * n + i,
                    "event_id": f"00000000-0000-4000-a000-0000000000{n}{i}",
                    "occurred_at": T0 + timedelta(hours=i),
                    "consented_at": None,
                }
                for i, (channel, category) in enumerate(
                    [("*", ""), ("email", ""), ("email", "newsletter")][: n + 1]
                )
            ],
        )
    # The second subject's address is under suppression (by its own HMAC).
    session.execute(
        insert(Suppression), [{"hmac": "1email".ljust(64, "0"), "kind": "email", "created_at": T0}]
    )
    session.commit()
    return session


@pytest.fixture
def direct(clean_db: Engine) -> Iterator[Session]:
    """A session whose prepared reads go straight to a kept connection's driver."""
    connection = clean_db.connect().execution_options(isolation_level="AUTOCOMMIT")
    with Session(bind=connection, info={DIRECT: Direct(connection)}) as session:
        yield session
    connection.close()


def _keys() -> list[str]:
    return [f"{n}{kind}".ljust(64, "0") for n in range(3) for kind in ("email", "external_id")]


params = st.fixed_dictionaries(
    {
        "key": st.sampled_from([*_keys(), "f" * 64]),
        "contact_kind": st.sampled_from(["email", "phone"]),
        "channels": st.lists(st.sampled_from(CHANNELS), min_size=1, max_size=3, unique=True),
        "categories": st.lists(st.sampled_from(CATEGORIES), min_size=1, max_size=3, unique=True),
        "purposes": st.just([""]),
        "s_keys": st.lists(st.sampled_from(_keys()), max_size=4, unique=True),
        "s_ring": st.just("ring"),
        "s_kinds": st.just(["email", "phone"]),
    }
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(given_params=params)
def test_the_checks_reads_give_sqlalchemys_rows_for_every_shape_of_their_lists(
    people: Session, direct: Session, given_params: dict[str, Any]
) -> None:
    dialect = checks._dialect(people)
    for prepared in (checks._CHECK_BY_KEY[dialect], checks._PERSON_BY_KEY[dialect]):
        wanted = {
            name: given_params[name]
            for name in prepared.statement.compile().params
            if name in given_params
        }
        expected = people.execute(prepared.statement, wanted).all()
        for got in (prepared.rows(people, wanted), prepared.rows(direct, wanted)):
            assert [tuple(row) for row in got] == [tuple(row) for row in expected]
            assert all(row._fields == tuple(expected[0]._fields) for row in got)
            assert {type(value) for row in got for value in row} <= {
                type(value) for row in expected for value in row
            }
    people.rollback()


@pytest.mark.parametrize("keys", [[], ["0email".ljust(64, "0")], _keys()])
@pytest.mark.parametrize("subject_id", [None, "00000000-0000-4000-8000-000000000001", "nobody"])
def test_the_suppression_read_gives_sqlalchemys_row(
    people: Session, direct: Session, keys: list[str], subject_id: str | None
) -> None:
    wanted = {"s_keys": keys, "s_ring": "ring", "s_kinds": ["email"], "subject_id": subject_id}
    prepared = suppression._ONE_READ
    expected = [tuple(row) for row in people.execute(prepared.statement, wanted).all()]
    for got in (prepared.rows(people, wanted), prepared.rows(direct, wanted)):
        assert got == expected
        held = len(keys) > 1 or subject_id == "00000000-0000-4000-8000-000000000001"
        assert got[0].held is held


def test_a_found_row_is_typed_as_sqlalchemy_types_it(people: Session) -> None:
    """Times are aware datetimes, the computed flags booleans (SQLite stores neither)."""
    dialect = checks._dialect(people)
    prepared = checks._CHECK_BY_KEY[dialect]
    row = prepared.rows(
        people,
        {
            "key": _keys()[4],
            "channels": ["*", "email"],
            "categories": ["", "newsletter"],
            "purposes": [""],
            "s_keys": [],
            "s_ring": "ring",
            "s_kinds": ["email"],
        },
    )[0]
    assert row.occurred_at == T0
    assert row.occurred_at.tzinfo is not None
    assert row.is_confirmed is True
    assert row.held is False
    assert row.subject_id.endswith("2")


def test_a_failing_statement_raises_sqlalchemys_error_not_the_drivers(
    session: Session, direct: Session
) -> None:
    missing = PreparedSelect(
        select(column("x"))
        .select_from(table("no_such_table"))
        .where(column("x").in_(bindparam("xs", expanding=True)))
    )
    for reading in (session, direct):
        with pytest.raises(exc.DBAPIError) as raised:
            missing.rows(reading, {"xs": ["a", "b"]})
        assert not raised.value.connection_invalidated
    assert direct.info[DIRECT].connection.invalidated is False


def test_a_direct_read_is_seen_by_the_engines_statement_listeners(
    clean_db: Engine, direct: Session
) -> None:
    seen: list[tuple[str, str]] = []
    for moment in ("before_cursor_execute", "after_cursor_execute"):

        def note(_c: Any, _cur: Any, statement: str, *_: Any, moment: str = moment) -> None:
            seen.append((moment, statement.split()[0]))

        event.listen(clean_db, moment, note)
    rows = suppression._ONE_READ.rows(
        direct, {"s_keys": [], "s_ring": "ring", "s_kinds": ["email"], "subject_id": None}
    )
    assert len(rows) == 1
    assert seen == [("before_cursor_execute", "SELECT"), ("after_cursor_execute", "SELECT")]


def test_the_fast_checks_reader_replaces_a_connection_the_database_dropped(
    clean_db: Engine,
) -> None:
    """The reader keeps one connection; when the server ends it, the read is run once more
    on a fresh one (PostgreSQL: a backend terminated, as a restart or failover would)."""
    if clean_db.dialect.name != "postgresql":
        pytest.skip("SQLite's connections are files: the database cannot drop one")
    reader = Reader(make_unpooled_engine(clean_db.url.render_as_string(hide_password=False)))
    one = PreparedSelect(select(func.pg_backend_pid()))
    first = reader.read(lambda session: one.rows(session, {})[0][0])
    assert reader.read(lambda session: one.rows(session, {})[0][0]) == first  # kept
    with clean_db.connect() as other:
        other.execute(text(f"SELECT pg_terminate_backend({int(first)})"))
    second = reader.read(lambda session: one.rows(session, {})[0][0])
    assert second != first
    reader.engine.dispose()
