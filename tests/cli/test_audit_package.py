"""The DPO package through the CLI: written, then verified with nothing but the file and key."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from sqlalchemy import delete, update
from sqlalchemy.orm import Session

from app.config import Settings
from app.domain.rules import Rules
from app.models import ChainHead, ConsentEvent
from app.services.audit import checkpoints, retention
from app.services.consent import subjects
from app.services.privacy_center import rights
from tests.factories import make_act, make_subscriber


@pytest.fixture
def exported(
    session: Session, rules: Rules, settings: Settings, cli: Callable[..., Result], tmp_path: Path
) -> tuple[Path, Path]:
    """A complete package of 3 subscribers, a checkpoint, and one more subscriber after it."""
    assert settings.audit_signing_key_path is not None
    key = checkpoints.signing_key(settings.audit_signing_key_path)
    for name in ("ada", "bob", "cy"):
        make_subscriber(session, rules, email=f"{name}@example.org")
    checkpoints.create(session, key)
    make_subscriber(session, rules, email="dee@example.org")
    package_file, key_file = tmp_path / "package.ndjson", tmp_path / "jwks.json"
    assert cli("audit", "package", "--output", str(package_file)).exit_code == 0
    key_file.write_text(cli("audit", "public-key").stdout)
    return package_file, key_file


def lines_of(path: Path) -> list[str]:
    return path.read_text().splitlines(keepends=True)


def event_lines(lines: list[str]) -> list[int]:
    return [i for i, line in enumerate(lines) if json.loads(line)["type"] == "event"]


def verify(cli: Callable[..., Result], package_file: Path, key_file: Path) -> dict[str, Any]:
    result = cli("audit", "verify", "--file", str(package_file), "--key", str(key_file))
    report: dict[str, Any] = json.loads(result.stdout)
    report["exit_code"] = result.exit_code
    return report


def seq_at(lines: list[str], index: int) -> int:
    return int(json.loads(lines[index])["seq"])


def test_an_untouched_package_verifies_against_its_checkpoints(
    cli: Callable[..., Result], exported: tuple[Path, Path]
) -> None:
    report = verify(cli, *exported)
    assert report["exit_code"] == 0, report
    assert report["complete"] is True
    assert report["checkpoints_checked"] == 1
    assert report["events_checked"] == len(event_lines(lines_of(exported[0])))


def test_the_package_carries_catalog_notices_key_and_signed_head(
    exported: tuple[Path, Path],
) -> None:
    records = [json.loads(line) for line in lines_of(exported[0])]
    kinds = [r["type"] for r in records]
    assert kinds[0] == "header"
    assert kinds[-1] == "trailer"
    assert {"key", "catalog", "event"} <= set(kinds)
    catalog = next(r["catalog"] for r in records if r["type"] == "catalog")
    assert all("legal_basis" in c and "recipients" in c for c in catalog["categories"])
    assert any(r["type"] == "event" and r["action"] == "checkpoint" for r in records)


def test_a_flipped_byte_is_caught_and_named(
    cli: Callable[..., Result], exported: tuple[Path, Path]
) -> None:
    package_file, key_file = exported
    lines = lines_of(package_file)
    index = event_lines(lines)[4]
    lines[index] = lines[index].replace('"actor":"client:tests"', '"actor":"client:testz"')
    package_file.write_text("".join(lines))
    report = verify(cli, package_file, key_file)
    assert report["exit_code"] == 1
    assert report["first_bad_seq"] == seq_at(lines, index)


def test_a_deleted_event_is_caught_and_named(
    cli: Callable[..., Result], exported: tuple[Path, Path]
) -> None:
    package_file, key_file = exported
    lines = lines_of(package_file)
    index = event_lines(lines)[3]
    gone = seq_at(lines, index)
    del lines[index]
    package_file.write_text("".join(lines))
    report = verify(cli, package_file, key_file)
    assert report["exit_code"] == 1
    assert report["first_bad_seq"] == gone


def test_an_inserted_event_is_caught_and_named(
    cli: Callable[..., Result], exported: tuple[Path, Path]
) -> None:
    package_file, key_file = exported
    lines = lines_of(package_file)
    index = event_lines(lines)[2]
    lines.insert(index + 1, lines[index])  # a copy of an event, right after it
    package_file.write_text("".join(lines))
    report = verify(cli, package_file, key_file)
    assert report["exit_code"] == 1
    assert report["first_bad_seq"] == seq_at(lines, index)


def test_reordered_events_are_caught_and_named(
    cli: Callable[..., Result], exported: tuple[Path, Path]
) -> None:
    package_file, key_file = exported
    lines = lines_of(package_file)
    first, second = event_lines(lines)[5:7]
    earlier = seq_at(lines, first)
    lines[first], lines[second] = lines[second], lines[first]
    package_file.write_text("".join(lines))
    report = verify(cli, package_file, key_file)
    assert report["exit_code"] == 1
    assert report["first_bad_seq"] == earlier


def test_a_cut_off_tail_is_caught_even_after_the_last_checkpoint(
    cli: Callable[..., Result], exported: tuple[Path, Path]
) -> None:
    package_file, key_file = exported
    lines = lines_of(package_file)
    last = event_lines(lines)[-1]
    package_file.write_text("".join(lines[:last]))  # the last event and the trailer are gone
    report = verify(cli, package_file, key_file)
    assert report["exit_code"] == 1
    assert report["first_bad_seq"] == seq_at(lines, last)


def test_a_package_signed_by_another_key_fails(
    cli: Callable[..., Result], exported: tuple[Path, Path], tmp_path: Path
) -> None:
    other = checkpoints.public_jwks(checkpoints.signing_key(tmp_path / "other-key.json"))
    other_file = tmp_path / "other.json"
    other_file.write_text(json.dumps(other))
    report = verify(cli, exported[0], other_file)
    assert report["exit_code"] == 1
    assert "signature" in report["problem"]


def test_a_filtered_package_verifies_its_events_and_catches_a_removed_one(
    session: Session,
    rules: Rules,
    cli: Callable[..., Result],
    exported: tuple[Path, Path],
    tmp_path: Path,
) -> None:
    _, key_file = exported
    filtered = tmp_path / "newsletter.ndjson"
    result = cli("audit", "package", "--output", str(filtered), "--category", "newsletter")
    assert result.exit_code == 0
    report = verify(cli, filtered, key_file)
    assert report["exit_code"] == 0, report
    assert report["complete"] is False
    assert report["checkpoints_checked"] == 1
    lines = lines_of(filtered)
    del lines[event_lines(lines)[1]]
    filtered.write_text("".join(lines))
    assert verify(cli, filtered, key_file)["exit_code"] == 1


def test_verify_with_a_file_needs_the_key(
    cli: Callable[..., Result], exported: tuple[Path, Path]
) -> None:
    assert cli("audit", "verify", "--file", str(exported[0])).exit_code == 2


def test_a_package_made_after_retention_verifies_and_a_hidden_deletion_is_caught(
    session: Session, rules: Rules, settings: Settings, cli: Callable[..., Result], tmp_path: Path
) -> None:
    t0 = datetime(2026, 1, 5, tzinfo=UTC)
    gone = make_subscriber(session, rules, email="gone@example.org", now=t0)
    subjects.erase(session, rules, gone, make_act(), now=t0 + timedelta(days=1))
    make_subscriber(session, rules, email="kept@example.org", now=t0 + timedelta(days=500))
    periods = retention.Periods(timedelta(days=30), timedelta(days=1095), timedelta(days=1095))
    assert settings.audit_signing_key_path is not None
    key = checkpoints.signing_key(settings.audit_signing_key_path)
    report = retention.run(session, periods, key=key, now=t0 + timedelta(days=1100))
    assert report.events_removed > 0
    key_file, package_file = tmp_path / "jwks.json", tmp_path / "after.ndjson"
    key_file.write_text(json.dumps(checkpoints.public_jwks(key)))
    cli("audit", "package", "--output", str(package_file))
    assert verify(cli, package_file, key_file)["exit_code"] == 0
    first = report.base_seq + 1
    victim = session.get(ConsentEvent, first)
    assert victim is not None
    session.execute(delete(ConsentEvent).where(ConsentEvent.seq == first))
    session.execute(update(ChainHead).values(base_seq=first, base_hash=victim.hash))
    session.commit()
    cli("audit", "package", "--output", str(package_file))
    report_after = verify(cli, package_file, key_file)
    assert report_after["exit_code"] == 1
    assert report_after["first_bad_seq"] == first
    assert cli("audit", "verify").exit_code == 1


def test_checkpoint_if_due_waits_for_checkpoint_every_events(
    session: Session, rules: Rules, cli: Callable[..., Result]
) -> None:
    make_subscriber(session, rules)  # four events
    assert json.loads(cli("audit", "checkpoint", "--if-due").stdout) == {"checkpoint": None}
    made = json.loads(cli("audit", "checkpoint").stdout)
    assert made["signed_seq"] == 4
    assert cli("audit", "verify").exit_code == 0


def test_retention_run_prints_its_counts(cli: Callable[..., Result]) -> None:
    result = cli("retention", "run")
    assert result.exit_code == 0
    report = json.loads(result.stdout)
    assert report["events_removed"] == 0
    assert report["event_seq"] == 1
    assert cli("audit", "verify").exit_code == 0


def test_rights_overdue_lists_late_requests_and_exits_1(
    session: Session, rules: Rules, cli: Callable[..., Result]
) -> None:
    subject_id = make_subscriber(session, rules)
    assert cli("rights", "overdue").exit_code == 0
    late = rights.record(
        session, subject_id, "erasure", received_at=datetime.now(UTC) - timedelta(days=45)
    )
    result = cli("rights", "overdue")
    assert result.exit_code == 1
    assert json.loads(result.stdout)["id"] == late.id
