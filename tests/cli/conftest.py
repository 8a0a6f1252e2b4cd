"""Running `consent-center` in-process against the test database, with the test's settings."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from click.testing import CliRunner, Result

from app.cli import main
from app.config import Settings


@pytest.fixture
def cli(settings: Settings, clean_db: object) -> Callable[..., Result]:
    env = {
        "DATABASE_URL": settings.database_url,
        "SECRET_KEY": settings.secret_key,
        "IDENTIFIER_HMAC_KEY": settings.identifier_key.decode(),  # as the app's and rules'
        "INSTANCE_PATH": str(settings.instance_path),
        "AUDIT_SIGNING_KEY_PATH": str(settings.audit_signing_key_path),
        "CATALOG_PATH": str(settings.catalog_path),
    }

    def run(*args: str) -> Result:
        return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)

    return run
