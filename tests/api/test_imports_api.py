"""Importing existing lists through the API: provenance, dry runs, errors, re-imports, restarts."""

from __future__ import annotations

import json
import logging
import uuid
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy import event as sa_event
from sqlalchemy.orm import Session

from app import worker
from app.database import Timeouts, make_engine
from app.domain.rules import Rules
from app.models import ConsentEvent, ImportChunk, Subject
from app.services.imports import jobs
from tests.api.identity_helpers import import_report, run_imports, upload
from tests.conftest import DATABASE_URL, ApiClient

NEWSLETTER = "channel=email&category=newsletter"


def ndjson(*rows: dict[str, Any]) -> str:
    return "".join(json.dumps(row) + "\n" for row in rows)


def row(**fields: Any) -> dict[str, Any]:
    return {
        "email": "ada@example.org",
        "channel": "email",
        "category": "newsletter",
        "status": "granted",
        "consented_at": "2021-03-04T10:00:00Z",
        "source": "old-crm",
        "method": "double_opt_in",
        "ip": "198.51.100.4",
        "user_agent": "Mozilla/5.0",
    } | fields


def check(api: ApiClient, query: str) -> dict[str, Any]:
    response = api.get(f"/v1/consent/check?{query}")
    assert response.status_code == 200, response.get_json()
    return response.get_json()  # type: ignore[no-any-return]


def imported(api: ApiClient, engine: Engine, rules: Rules, body: str, **kwargs: Any) -> dict:  # type: ignore[type-arg]
    import_id = upload(api, body, **kwargs)
    assert import_report(api, import_id)["state"] == "queued"
    run_imports(engine, rules)
    return import_report(api, import_id)


def test_an_import_keeps_provenance_and_both_times(
    api: ApiClient, clean_db: Engine, rules: Rules
) -> None:
    report = imported(api, clean_db, rules, ndjson(row(external_id="crm-1")))
    assert (report["state"], report["rows"], report["applied"], report["rejected"]) == (
        "done",
        1,
        1,
        0,
    )
    answer = check(api, f"email=ada@example.org&{NEWSLETTER}")
    assert answer["reason"] == "granted"
    assert check(api, f"external_id=crm-1&{NEWSLETTER}")["contact"] == "ada@example.org"
    events = api.get(f"/v1/audit/events?subject_id={answer['subject_id']}").get_json()["events"]
    grant = next(e for e in events if e["category"] == "newsletter")
    assert grant["method"] == "import"
    assert grant["source"] == "old-crm"
    assert grant["details"]["consented_at"] == "2021-03-04T10:00:00+00:00"
    assert grant["details"]["import_method"] == "double_opt_in"
    assert grant["occurred_at"] > "2025"  # recorded now, given in 2021
    assert grant["evidence"]["ip"] == "198.51.100.4"
    assert api.get("/v1/audit/verify").get_json()["ok"] is True


def test_a_dry_run_changes_nothing_and_reports_what_would(
    api: ApiClient, clean_db: Engine, rules: Rules
) -> None:
    body = ndjson(row(), row(email="bob@example.org"), {"email": "x@example.org"})
    report = imported(api, clean_db, rules, body, dry_run=True)
    assert (report["dry_run"], report["rows"], report["applied"], report["rejected"]) == (
        True,
        3,
        2,
        1,
    )
    assert check(api, f"email=ada@example.org&{NEWSLETTER}")["reason"] == "no_record"
    with Session(clean_db) as session:
        assert session.scalar(select(func.count()).select_from(ConsentEvent)) == 0


def test_bad_lines_are_reported_per_line_and_the_rest_applies(
    api: ApiClient, clean_db: Engine, rules: Rules
) -> None:
    body = "\n".join(
        [
            json.dumps(row()),
            "not json",
            json.dumps(row(email="not-an-address")),
            json.dumps(row(category="nope")),
            json.dumps(row(notice_version="never-published")),
            json.dumps(row(colour="red")),
            "",
            json.dumps(row(email="bob@example.org", status="maybe")),
            json.dumps(row(email="eve@example.org", category="order_updates")),
        ]
    )
    report = imported(api, clean_db, rules, body)
    assert (report["rows"], report["applied"], report["rejected"]) == (8, 1, 7)
    lines = {e["line"]: e["detail"] for e in report["errors"]}
    assert sorted(lines) == [2, 3, 4, 5, 6, 8, 9]
    assert "JSON" in lines[2]
    assert "never published" in lines[5]
    assert "colour" in lines[6]


def test_the_same_file_twice_changes_nothing_the_second_time(
    api: ApiClient, clean_db: Engine, rules: Rules
) -> None:
    body = ndjson(row(), row(category="offers", status="withdrawn"))
    first = imported(api, clean_db, rules, body)
    with Session(clean_db) as session:
        events = session.scalar(select(func.count()).select_from(ConsentEvent))
    second = imported(api, clean_db, rules, body)
    assert (first["applied"], second["applied"], second["unchanged"]) == (2, 0, 2)
    with Session(clean_db) as session:
        assert session.scalar(select(func.count()).select_from(ConsentEvent)) == events


def test_an_import_never_overrides_a_later_withdrawal_or_unsubscribe_all(
    api: ApiClient, clean_db: Engine, rules: Rules
) -> None:
    imported(api, clean_db, rules, ndjson(row(), row(email="bob@example.org")))
    ada = check(api, f"email=ada@example.org&{NEWSLETTER}")["subject_id"]
    bob = check(api, f"email=bob@example.org&{NEWSLETTER}")["subject_id"]
    withdrawn = api.patch(
        f"/v1/subjects/{ada}/preferences",
        json={"changes": [{"channel": "email", "category": "newsletter", "status": "withdrawn"}]},
    )
    assert withdrawn.status_code == 200
    assert api.post(f"/v1/subjects/{bob}/unsubscribe-all").status_code == 200
    older = ndjson(
        row(consented_at="2022-01-01T00:00:00Z"),
        row(email="bob@example.org", consented_at="2030-01-01T00:00:00Z"),
    )
    report = imported(api, clean_db, rules, older)
    assert (report["applied"], report["unchanged"]) == (0, 2)
    assert check(api, f"email=ada@example.org&{NEWSLETTER}")["reason"] == "withdrawn"
    assert check(api, f"email=bob@example.org&{NEWSLETTER}")["reason"] == "unsubscribed_all"


def test_an_older_row_changes_nothing_a_newer_one_does(
    api: ApiClient, clean_db: Engine, rules: Rules
) -> None:
    imported(api, clean_db, rules, ndjson(row(consented_at="2022-01-01T00:00:00Z")))
    older = imported(
        api, clean_db, rules, ndjson(row(status="withdrawn", consented_at="2021-01-01T00:00:00Z"))
    )
    assert older["unchanged"] == 1
    assert check(api, f"email=ada@example.org&{NEWSLETTER}")["reason"] == "granted"
    newer = imported(
        api, clean_db, rules, ndjson(row(status="withdrawn", consented_at="2023-01-01T00:00:00Z"))
    )
    assert newer["applied"] == 1
    assert check(api, f"email=ada@example.org&{NEWSLETTER}")["reason"] == "withdrawn"


def test_a_purchased_list_is_recorded_and_never_consent(
    api: ApiClient, clean_db: Engine, rules: Rules
) -> None:
    body = ndjson(row(method="purchased_list", email="lead@example.org"))
    report = imported(api, clean_db, rules, body)
    assert report["applied"] == 1
    answer = check(api, f"email=lead@example.org&{NEWSLETTER}")
    assert (answer["allowed"], answer["reason"]) == (False, "no_record")
    events = api.get(f"/v1/audit/events?subject_id={answer['subject_id']}").get_json()["events"]
    assert [e["action"] for e in events] == ["import_recorded"]
    assert events[0]["details"]["import_method"] == "purchased_list"
    assert imported(api, clean_db, rules, body)["unchanged"] == 1


def test_an_email_row_without_proof_of_confirmation_stays_pending(
    api: ApiClient, clean_db: Engine, rules: Rules
) -> None:
    body = ndjson(row(method="single_opt_in"), row(email="b@example.org", method="form"))
    imported(api, clean_db, rules, body)
    assert check(api, f"email=ada@example.org&{NEWSLETTER}")["reason"] == "pending_confirmation"
    assert check(api, f"email=b@example.org&{NEWSLETTER}")["reason"] == "pending_confirmation"


def test_a_suppressed_address_gains_nothing_from_an_import(
    api: ApiClient, clean_db: Engine, rules: Rules
) -> None:
    imported(api, clean_db, rules, ndjson(row()))
    subject_id = check(api, f"email=ada@example.org&{NEWSLETTER}")["subject_id"]
    assert api.delete(f"/v1/subjects/{subject_id}").status_code == 200
    report = imported(
        api,
        clean_db,
        rules,
        ndjson(row(email=" ADA@example.org ", consented_at="2031-01-01T00:00:00Z")),
    )
    assert report["unchanged"] == 1
    assert check(api, f"email=ada@example.org&{NEWSLETTER}")["reason"] == "suppressed"


def test_csv_with_a_header_row_imports_alike(
    api: ApiClient, clean_db: Engine, rules: Rules
) -> None:
    body = (
        "email,channel,category,status,consented_at,method,source\n"
        "ada@example.org,email,newsletter,granted,2021-03-04T10:00:00Z,double_opt_in,fair\n"
        "bob@example.org,email,newsletter,granted,2021-03-04,double_opt_in,fair\n"
        'cy@example.org,email,offers,withdrawn,2021-03-04T10:00:00Z,form,"a, b"\n'
    )
    report = imported(api, clean_db, rules, body, csv=True)
    assert (report["rows"], report["applied"], report["rejected"]) == (3, 2, 1)
    assert report["errors"][0]["line"] == 3
    assert check(api, f"email=ada@example.org&{NEWSLETTER}")["reason"] == "granted"


def test_an_import_cut_off_mid_way_resumes_at_the_next_chunk(
    api: ApiClient, clean_db: Engine, rules: Rules, monkeypatch: Any
) -> None:
    monkeypatch.setattr(jobs, "CHUNK_LINES", 2)
    body = ndjson(*(row(email=f"p{n}@example.org") for n in range(5)))
    import_id = upload(api, body)
    with Session(clean_db) as session:
        assert jobs.apply_next_chunk(session, rules, import_id) is True
    # The worker dies here; a new one picks the import up where it stopped.
    middle = import_report(api, import_id)
    assert (middle["state"], middle["rows"], middle["chunks"], middle["chunks_done"]) == (
        "running",
        2,
        3,
        1,
    )
    run_imports(clean_db, rules)
    report = import_report(api, import_id)
    assert (report["state"], report["rows"], report["applied"]) == ("done", 5, 5)
    with Session(clean_db) as session:
        assert session.scalar(select(func.count()).select_from(ImportChunk)) == 0
        grants = session.scalar(
            select(func.count()).select_from(ConsentEvent).where(ConsentEvent.action == "grant")
        )
    assert grants == 10  # channel and category, once each per person


def test_imports_refuse_other_media_types_and_unknown_ids(api: ApiClient) -> None:
    response = api.post("/v1/imports", json={"email": "a@example.org"})
    assert response.status_code == 415
    assert response.mimetype == "application/problem+json"
    missing = api.get("/v1/imports/00000000-0000-4000-8000-000000000000")
    assert missing.status_code == 404
    bad = api.post("/v1/imports?dry_run=perhaps", data="", content_type="text/csv")
    assert bad.status_code == 422


def test_rows_of_one_person_in_one_file_land_on_one_subject_and_conflicts_are_refused(
    api: ApiClient, clean_db: Engine, rules: Rules
) -> None:
    body = ndjson(
        row(external_id="crm-1"),
        row(email="Ada@Example.org", category="offers"),
        row(email="bob@example.org", external_id="crm-2"),
        row(email="bob@example.org", external_id="crm-1"),
    )
    report = imported(api, clean_db, rules, body)
    assert (report["applied"], report["rejected"]) == (3, 1)
    assert report["errors"][0]["line"] == 4
    assert "two different subjects" in report["errors"][0]["detail"]
    ada = check(api, f"external_id=crm-1&{NEWSLETTER}")
    offers = check(api, "email=ada@example.org&channel=email&category=offers")
    assert (offers["reason"], offers["subject_id"]) == ("granted", ada["subject_id"])


def test_a_chunk_of_many_rows_is_written_in_bulk_and_later_rows_see_earlier_ones(
    api: ApiClient, clean_db: Engine, rules: Rules
) -> None:
    """More rows than `database.COPY_FROM`, so PostgreSQL takes the COPY path: everyone lands,
    within the chunk a later withdrawal stands over an earlier grant and an older row changes
    nothing, and the chain and the state verify."""
    people = [row(email=f"p{n}@example.org", external_id=f"crm-{n}") for n in range(60)]
    body = ndjson(
        row(),
        *people,
        row(status="withdrawn", consented_at="2022-01-01T00:00:00Z"),
        row(email="p7@example.org", status="withdrawn", consented_at="2019-01-01T00:00:00Z"),
    )
    report = imported(api, clean_db, rules, body)
    assert (report["rows"], report["applied"], report["unchanged"], report["rejected"]) == (
        63,
        62,
        1,
        0,
    )
    assert check(api, f"email=ada@example.org&{NEWSLETTER}")["reason"] == "withdrawn"
    assert check(api, f"email=p7@example.org&{NEWSLETTER}")["reason"] == "granted"
    assert check(api, f"external_id=crm-59&{NEWSLETTER}")["contact"] == "p59@example.org"
    verified = api.get("/v1/audit/verify").get_json()
    assert verified["ok"] is True, verified
    with Session(clean_db) as session:
        # Time-ordered ids (UUIDv7): the chunk's events and people sort as they were made,
        # so their index entries land together instead of on random pages.
        ids = session.scalars(select(ConsentEvent.id).order_by(ConsentEvent.seq)).all()
        assert len(ids) > 60
        assert list(ids) == sorted(ids)
        assert {uuid.UUID(i).version for i in ids} == {7}
        subject_ids = session.scalars(select(Subject.id)).all()
        assert {uuid.UUID(i).version for i in subject_ids} == {7}


def _analysed(engine: Engine) -> dict[str, int]:
    """How often each table an import writes has had its planner statistics made."""
    names = [table.name for table in jobs._WRITTEN]
    with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            rows = connection.execute(
                text(
                    "SELECT relname, analyze_count FROM pg_stat_user_tables"
                    " WHERE relname = ANY(:names)"
                ),
                {"names": names},
            )
            return {str(name): int(count) for name, count in rows}
        has_stats = connection.scalar(
            text("SELECT count(*) FROM sqlite_master WHERE name = 'sqlite_stat1'")
        )
        if not has_stats:
            return dict.fromkeys(names, 0)
        rows = connection.execute(text("SELECT tbl, count(*) FROM sqlite_stat1 GROUP BY tbl"))
        found = {str(name): int(count) for name, count in rows}
        return {name: found.get(name, 0) for name in names}


def _forget_statistics(engine: Engine) -> None:
    if engine.dialect.name == "sqlite":
        with engine.begin() as connection:
            if connection.scalar(
                text("SELECT count(*) FROM sqlite_master WHERE name = 'sqlite_stat1'")
            ):
                connection.execute(text("DELETE FROM sqlite_stat1"))


def test_a_large_import_leaves_its_tables_analysed_a_dry_run_does_not(
    api: ApiClient, clean_db: Engine, rules: Rules, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With autovacuum off or behind, the checks after a 1M-row import were planned from an
    empty table's statistics (a check by external id 50 ms instead of 0.3)."""
    monkeypatch.setattr(jobs, "ANALYZE_AFTER", 20)
    people = ndjson(*(row(email=f"p{n}@example.org", external_id=f"crm-{n}") for n in range(30)))
    _forget_statistics(clean_db)
    before = _analysed(clean_db)
    imported(api, clean_db, rules, people, dry_run=True)
    assert _analysed(clean_db) == before  # a dry run wrote nothing to analyse
    imported(api, clean_db, rules, people)
    after = _analysed(clean_db)
    assert all(after[name] > before[name] for name in before), (before, after)
    small = ndjson(*(row(email=f"q{n}@example.org") for n in range(5)))
    imported(api, clean_db, rules, small)
    assert _analysed(clean_db) == after  # too few rows to change the numbers
    # The worker's way, with its parse ahead:
    others = ndjson(*(row(email=f"r{n}@example.org") for n in range(30)))
    upload(api, others)
    _forget_statistics(clean_db)
    before = _analysed(clean_db)
    with jobs.Ahead() as ahead:
        assert worker.import_once(clean_db, rules, max_chunks=10, ahead=ahead) == 1
    assert check(api, f"email=r29@example.org&{NEWSLETTER}")["reason"] == "granted"
    assert all(count > before[name] for name, count in _analysed(clean_db).items())


def test_an_analyse_that_cannot_run_leaves_the_import_done_and_says_so(
    api: ApiClient,
    clean_db: Engine,
    rules: Rules,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Another session holds a lock ANALYZE needs: the import stays done, nothing is lost,
    a warning names what to run, and a later analyse succeeds."""
    monkeypatch.setattr(jobs, "ANALYZE_AFTER", 20)
    import_id = upload(api, ndjson(*(row(email=f"p{n}@example.org") for n in range(30))))
    impatient = make_engine(DATABASE_URL, timeouts=Timeouts(lock=timedelta(milliseconds=200)))
    with Session(impatient) as session:
        while jobs.apply_next_chunk(session, rules, import_id):
            pass
        with impatient.connect() as other:
            is_postgresql = impatient.dialect.name == "postgresql"
            if is_postgresql:
                other.execute(text("LOCK TABLE consent_events IN SHARE UPDATE EXCLUSIVE MODE"))
            else:  # the write lock, taken by hand
                other = other.execution_options(isolation_level="AUTOCOMMIT")
                other.exec_driver_sql("BEGIN IMMEDIATE")
            with caplog.at_level(logging.WARNING, logger=jobs.__name__):
                assert jobs.analyze_written(session, import_id) is False
            other.rollback() if is_postgresql else other.exec_driver_sql("ROLLBACK")
        assert jobs.analyze_written(session, import_id) is True
    impatient.dispose()
    report = import_report(api, import_id)
    assert (report["state"], report["applied"]) == ("done", 30)
    assert check(api, f"email=p29@example.org&{NEWSLETTER}")["reason"] == "granted"
    assert any("ANALYZE" in record.getMessage() for record in caplog.records)


def test_chunks_parsed_ahead_apply_as_chunks_parsed_in_turn(
    api: ApiClient, clean_db: Engine, rules: Rules, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each chunk's successor is parsed on a thread while it is written: bad lines, a person
    seen again in a later chunk, and an older row after a newer one come out as inline."""
    monkeypatch.setattr(jobs, "CHUNK_LINES", 3)

    def body(domain: str) -> str:
        lines = [
            row(email=f"p{n}@{domain}", consented_at=f"2021-0{1 + n}-01T00:00:00Z")
            for n in range(8)
        ]
        lines[4] = row(email=f"p0@{domain}", status="withdrawn", consented_at="2022-01-01T00:00Z")
        lines[6] = row(email=f"p1@{domain}", status="withdrawn", consented_at="2001-01-01T00:00Z")
        return ndjson(*lines) + "not json\n" + ndjson(row(email=f"p9@{domain}", channel="fax"))

    reports = []
    for domain, ahead in (("inline.example", None), ("ahead.example", jobs.Ahead())):
        import_id = upload(api, body(domain))
        with Session(clean_db) as session:
            while jobs.apply_next_chunk(session, rules, import_id, ahead=ahead):
                pass
        if ahead is not None:
            ahead.close()
        report = import_report(api, import_id)
        reports.append([report[k] for k in ("rows", "applied", "unchanged", "rejected", "errors")])
        assert check(api, f"email=p0@{domain}&{NEWSLETTER}")["reason"] == "withdrawn"
        assert check(api, f"email=p1@{domain}&{NEWSLETTER}")["reason"] == "granted"
    assert reports[0] == reports[1]
    rows, applied, unchanged, rejected, errors = reports[0]
    assert (rows, applied, unchanged, rejected) == (10, 7, 1, 2)
    assert [e["line"] for e in errors] == [9, 10]


def test_a_parse_made_ahead_serves_only_the_chunk_it_was_made_from(rules: Rules) -> None:
    first = ImportChunk(import_id="i", number=1, first_line=1, header=None, body=ndjson(row()))
    other = ImportChunk(
        import_id="i", number=2, first_line=2, header=None, body=ndjson(row(email="b@example.org"))
    )
    with jobs.Ahead() as ahead:
        ahead.start(rules, "i", first)
        taken = ahead.take(rules, "i", other)  # not the chunk parsed ahead: parsed now
        assert [parsed_row.identifiers for _, parsed_row, *_ in taken.rows] == [
            (("email", "b@example.org"),)
        ]
        ahead.start(rules, "i", first)
        assert ahead.take(rules, "j", first).rows[0][0] == 1  # another import's chunk 1
        ahead.start(rules, "i", first)
        made = ahead.take(rules, "i", first)
        assert [parsed_row.identifiers for _, parsed_row, *_ in made.rows] == [
            (("email", "ada@example.org"),)
        ]


def test_a_chunk_parsed_ahead_is_read_from_the_database_once(
    api: ApiClient, clean_db: Engine, rules: Rules, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The parse ahead reads the next chunk's lines; applying that chunk then reads its key
    columns only (it read the lines a second time before)."""
    monkeypatch.setattr(jobs, "CHUNK_LINES", 2)
    import_id = upload(api, ndjson(*(row(email=f"p{n}@example.org") for n in range(8))))
    lines_read: list[str] = []

    def note(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().startswith("SELECT") and "import_chunks.body" in statement:
            lines_read.append(statement)

    sa_event.listen(clean_db, "before_cursor_execute", note)
    try:
        run_imports(clean_db, rules)
    finally:
        sa_event.remove(clean_db, "before_cursor_execute", note)
    assert import_report(api, import_id)["applied"] == 8
    # Chunk 0 on its own, chunks 1-3 ahead, and the look for a chunk 4 that is not there.
    assert len(lines_read) == 5
