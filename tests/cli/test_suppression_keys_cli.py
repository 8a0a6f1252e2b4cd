"""`consent-center suppression-keys`: the identifiers' variant keys under the CLI's key ring."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from app.cli import main
from app.domain.rules import Rules
from app.models import IdentifierVariant
from tests.conftest import DATABASE_URL
from tests.factories import make_subscriber


def test_suppression_keys_fills_under_its_ring_once(
    clean_db: Engine, rules: Rules, tmp_path: Path
) -> None:
    with Session(clean_db) as session:
        make_subscriber(session, rules)  # its variants under the tests' ring, not the CLI's
    env = {
        "DATABASE_URL": DATABASE_URL,
        "SECRET_KEY": "cli-test-secret",
        "INSTANCE_PATH": str(tmp_path / "instance"),
    }
    first = CliRunner(env=env).invoke(main, ["suppression-keys"])
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout) == {"identifiers": 1}
    again = CliRunner(env=env).invoke(main, ["suppression-keys"])
    assert json.loads(again.stdout) == {"identifiers": 0}
    with Session(clean_db) as session:
        rings = session.scalar(select(func.count(func.distinct(IdentifierVariant.ring))))
    assert rings == 1  # the other ring's were dropped
