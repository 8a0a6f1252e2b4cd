"""`consent-center audit verify` against the database: each forgery fails and is named."""

from __future__ import annotations

import json
from collections.abc import Callable

from click.testing import Result
from sqlalchemy import text
from sqlalchemy.orm import Session

from app.domain.rules import Rules
from tests.factories import make_subscriber


def test_a_changed_evidence_row_fails_the_cli_verify_naming_it(
    cli: Callable[..., Result], session: Session, rules: Rules
) -> None:
    make_subscriber(session, rules)
    assert cli("audit", "verify").exit_code == 0
    session.execute(text("UPDATE evidence SET user_agent = 'forged'"))
    session.commit()
    result = cli("audit", "verify")
    report = json.loads(result.stdout)
    assert result.exit_code == 1
    assert report["ok"] is False
    assert report["record"] == "evidence"
    assert report["evidence_hash"]
    assert report["first_bad_seq"] == 1
