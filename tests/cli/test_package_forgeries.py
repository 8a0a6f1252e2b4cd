"""A DPO package verified offline: every record is checked, each forgery fails naming it."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from joserfc.jwk import ECKey
from sqlalchemy.orm import Session

from app.config import Settings
from app.domain.identifiers import identifier
from app.domain.rules import Rules
from app.domain.vocabulary import IdentifierKind
from app.services.audit import checkpoints
from app.services.consent import notices
from app.services.optin import confirmation, subscriptions
from tests.factories import make_act
from tests.web.pages import notices_path

VERSION = "2026-11-01"


@pytest.fixture
def package(
    session: Session, rules: Rules, settings: Settings, cli: Callable[..., Result], tmp_path: Path
) -> tuple[list[dict[str, Any]], Path]:
    """A complete package: notices, two confirmed subscribers citing one, a checkpoint."""
    assert settings.audit_signing_key_path is not None
    notices.publish_file(session, notices_path())
    for email in ("ada@example.org", "bob@example.org"):
        requested = subscriptions.request(
            session,
            rules,
            subscriptions.OptIn(identifier(IdentifierKind.EMAIL, email), "email", ["newsletter"]),
            make_act(notice_version=VERSION),
        )
        assert requested.request is not None
        confirmation.confirm_request(
            session, rules, requested.request.id, make_act(actor="subject")
        )
    checkpoints.create(session, checkpoints.signing_key(settings.audit_signing_key_path))
    package_file, key_file = tmp_path / "package.ndjson", tmp_path / "jwks.json"
    assert cli("audit", "package", "--output", str(package_file)).exit_code == 0
    key_file.write_text(cli("audit", "public-key").stdout)
    return [json.loads(line) for line in package_file.read_text().splitlines()], key_file


def verify(
    cli: Callable[..., Result], records: list[dict[str, Any]], key_file: Path
) -> dict[str, Any]:
    forged = key_file.parent / "forged.ndjson"
    forged.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    result = cli("audit", "verify", "--file", str(forged), "--key", str(key_file))
    report: dict[str, Any] = json.loads(result.stdout)
    report["exit_code"] = result.exit_code
    return report


def first(records: list[dict[str, Any]], kind: str, **match: Any) -> dict[str, Any]:
    return next(
        r for r in records if r["type"] == kind and all(r.get(k) == v for k, v in match.items())
    )


def test_the_untouched_package_verifies_every_record(
    cli: Callable[..., Result], package: tuple[list[dict[str, Any]], Path]
) -> None:
    report = verify(cli, *package)
    assert report["exit_code"] == 0, report
    assert report["checked"]["notices"] >= 1
    assert report["checked"]["evidence"] >= 4


@pytest.mark.parametrize("rehash", [False, True])
def test_a_changed_notice_text_fails_naming_the_notice(
    cli: Callable[..., Result], package: tuple[list[dict[str, Any]], Path], rehash: bool
) -> None:
    records, key_file = package
    notice = first(records, "notice", version=VERSION, locale="en")
    notice["text"] = "We may sell your address to anyone."
    if rehash:
        notice["sha256"] = notices.sha256(notice["text"])
    report = verify(cli, records, key_file)
    assert (report["ok"], report["exit_code"]) == (False, 1)
    assert report["record"] == "notice"
    assert report["notice"]["version"] == VERSION


def test_a_changed_catalog_line_fails_naming_the_catalog(
    cli: Callable[..., Result], package: tuple[list[dict[str, Any]], Path]
) -> None:
    records, key_file = package
    catalog = first(records, "catalog")["catalog"]
    catalog["controller"]["name"] = "Someone Else Ltd"
    report = verify(cli, records, key_file)
    assert (report["ok"], report["record"]) == (False, "catalog")


def test_changed_evidence_fails_naming_the_event_and_its_evidence(
    cli: Callable[..., Result], package: tuple[list[dict[str, Any]], Path]
) -> None:
    records, key_file = package
    event = next(r for r in records if r["type"] == "event" and r.get("evidence"))
    event["evidence"]["ip"] = "10.0.0.66"
    report = verify(cli, records, key_file)
    assert (report["ok"], report["record"]) == (False, "evidence")
    assert report["first_bad_seq"] == event["seq"]
    assert report["evidence_hash"] == event["evidence_hash"]
    event["evidence"]["ip"] = "198.51.100.7"
    event["evidence"]["user_agent"] = "forged/1.0"
    assert verify(cli, records, key_file)["record"] == "evidence"


def test_another_key_line_fails_naming_the_key(
    cli: Callable[..., Result], package: tuple[list[dict[str, Any]], Path]
) -> None:
    records, key_file = package
    other = ECKey.generate_key("P-256", auto_kid=True)
    first(records, "key")["jwks"] = checkpoints.public_jwks(other)
    report = verify(cli, records, key_file)
    assert (report["ok"], report["record"]) == (False, "key")


def test_a_record_of_an_unknown_type_fails(
    cli: Callable[..., Result], package: tuple[list[dict[str, Any]], Path]
) -> None:
    records, key_file = package
    records.insert(3, {"type": "note", "text": "trust me"})
    report = verify(cli, records, key_file)
    assert (report["ok"], report["record"]) == (False, "package")
    assert "unknown type" in report["problem"]
