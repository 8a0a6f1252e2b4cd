"""The `consent-center` command, driven as an operator would, against the test database."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from app.cli import main
from app.domain.rules import Rules
from tests.conftest import DATABASE_URL
from tests.factories import make_subscriber


@pytest.fixture
def run(clean_db: Engine, tmp_path: Path) -> CliRunner:
    return CliRunner(
        env={
            "DATABASE_URL": DATABASE_URL,
            "SECRET_KEY": "cli-test-secret",
            "INSTANCE_PATH": str(tmp_path / "instance"),
        }
    )


def test_create_client_prints_one_json_object(run: CliRunner) -> None:
    result = run.invoke(main, ["create-client", "crm", "--scopes", "consent:read consent:write"])
    assert result.exit_code == 0, result.output
    created = json.loads(result.stdout)
    assert set(created) == {"client_id", "client_secret", "scopes"}
    assert created["scopes"] == ["consent:read", "consent:write"]


def test_create_client_refuses_unknown_scopes(run: CliRunner) -> None:
    result = run.invoke(main, ["create-client", "crm", "--scopes", "consent:read root"])
    assert result.exit_code != 0


def test_audit_verify_passes_then_names_the_edited_event(
    run: CliRunner, clean_db: Engine, rules: Rules
) -> None:
    with Session(clean_db) as session:
        make_subscriber(session, rules, categories=["newsletter", "offers"])
    ok = run.invoke(main, ["audit", "verify"])
    assert ok.exit_code == 0
    assert json.loads(ok.stdout)["ok"] is True
    with clean_db.begin() as connection:
        connection.execute(text("UPDATE consent_events SET actor = 'someone else' WHERE seq = 2"))
    broken = run.invoke(main, ["audit", "verify"])
    assert broken.exit_code == 1
    assert json.loads(broken.stdout)["first_bad_seq"] == 2


def test_audit_export_writes_every_event(
    run: CliRunner, clean_db: Engine, rules: Rules, tmp_path: Path
) -> None:
    with Session(clean_db) as session:
        make_subscriber(session, rules)
    target = tmp_path / "trail.ndjson"
    result = run.invoke(main, ["audit", "export", "--output", str(target)])
    assert result.exit_code == 0, result.output
    events = [json.loads(line) for line in target.read_text().splitlines()]
    assert [e["seq"] for e in events] == [1, 2, 3, 4]
    csv_out = run.invoke(main, ["audit", "export", "--format", "csv"])
    assert csv_out.stdout.splitlines()[0].startswith("seq,id,occurred_at,subject_id")
    assert len(csv_out.stdout.splitlines()) == 5


def test_single_opt_in_for_germany_stops_the_command_naming_the_country(
    clean_db: Engine, tmp_path: Path
) -> None:
    runner = CliRunner(
        env={
            "DATABASE_URL": DATABASE_URL,
            "SECRET_KEY": "cli-test-secret",
            "INSTANCE_PATH": str(tmp_path / "instance"),
            "SINGLE_OPT_IN_COUNTRIES": "US,DE",
        }
    )
    result = runner.invoke(main, ["db", "upgrade"])
    assert result.exit_code == 1
    assert "DE" in result.output
    assert "SINGLE_OPT_IN_OVERRIDE=DE" in result.output
    assert "Traceback" not in result.output
