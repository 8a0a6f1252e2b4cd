"""Settings: one declaration, every setting from the environment, production refusals."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from app.config import ConfigError, Settings, declared, reference

BASE = {"DATABASE_URL": "sqlite://", "SECRET_KEY": "s" * 32}
DOCS = Path(__file__).parent.parent / "docs" / "configuration.md"


def test_every_setting_is_declared_with_its_variable_and_meaning() -> None:
    names = [spec.metadata["env"] for spec in declared()]
    assert len(names) == len(set(names))
    assert all(spec.metadata["meaning"] for spec in declared())


def test_the_settings_that_had_no_variable_now_have_one() -> None:
    settings = Settings.from_env(
        BASE
        | {
            "REVOCATION_REFRESH_SECONDS": "3",
            "ACCESS_SESSION_IDLE_MINUTES": "5",
            "MAX_CONTENT_LENGTH": "1024",
        }
    )
    assert settings.revocation_refresh == timedelta(seconds=3)
    assert settings.access_session_idle == timedelta(minutes=5)
    assert settings.max_content_length == 1024


def test_a_malformed_value_names_its_variable() -> None:
    with pytest.raises(ConfigError, match="SMTP_PORT must be a whole number"):
        Settings.from_env(BASE | {"SMTP_PORT": "twenty-five"})
    with pytest.raises(ConfigError, match="SMTP_STARTTLS must be true or false"):
        Settings.from_env(BASE | {"SMTP_STARTTLS": "maybe"})


def test_defaults_stand_in_only_for_unset_variables() -> None:
    assert Settings.from_env(BASE, defaults={"PORT": "8123"}).base_url == "http://localhost:8123"
    given = Settings.from_env(BASE | {"PORT": "9000"}, defaults={"PORT": "8123"})
    assert given.base_url == "http://localhost:9000"


def test_the_configuration_reference_is_current() -> None:
    assert DOCS.read_text(encoding="utf-8") == reference(), (
        "run `consent-center config-reference > docs/configuration.md`"
    )


def test_production_refuses_to_start_listing_everything_missing(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as refused:
        Settings.from_env({"PRODUCTION": "true", "INSTANCE_PATH": str(tmp_path)})
    message = str(refused.value)
    for missing in ("SECRET_KEY", "IDENTIFIER_HMAC_KEY", "DATABASE_URL", "AUDIT_SIGNING_KEY_PATH"):
        assert missing in message
    assert message.count("\n- ") == 4
    assert not (tmp_path / "secret_key").exists()  # nothing is generated in production


def test_production_refuses_sqlite_and_a_key_in_the_instance_folder(tmp_path: Path) -> None:
    key = tmp_path / "instance" / "audit-signing-key.json"
    key.parent.mkdir()
    key.write_text("{}")
    env = {
        "PRODUCTION": "true",
        "SECRET_KEY": "s" * 32,
        "IDENTIFIER_HMAC_KEY": "i" * 32,
        "DATABASE_URL": "sqlite:///x.db",
        "INSTANCE_PATH": str(tmp_path / "instance"),
        "AUDIT_SIGNING_KEY_PATH": str(key),
    }
    with pytest.raises(ConfigError) as refused:
        Settings.from_env(env)
    assert "DATABASE_URL is not a PostgreSQL URL" in str(refused.value)
    assert "inside INSTANCE_PATH" in str(refused.value)
    with pytest.raises(ConfigError, match="does not exist"):
        Settings.from_env(env | {"AUDIT_SIGNING_KEY_PATH": str(tmp_path / "absent.json")})


def test_production_starts_with_everything_set(tmp_path: Path) -> None:
    key = tmp_path / "keys" / "signing.json"
    key.parent.mkdir()
    key.write_text("{}")
    settings = Settings.from_env(
        {
            "PRODUCTION": "true",
            "SECRET_KEY": "s" * 32,
            "IDENTIFIER_HMAC_KEY": "i" * 32,
            "IDENTIFIER_HMAC_OLD_KEYS": "old-1, old-2",
            "DATABASE_URL": "postgresql://u@db/consent",
            "INSTANCE_PATH": str(tmp_path / "instance"),
            "AUDIT_SIGNING_KEY_PATH": str(key),
        }
    )
    assert settings.database_url == "postgresql+psycopg://u@db/consent"
    assert settings.identifier_old_keys == (b"old-1", b"old-2")
    assert not settings.metrics_are_open


def test_a_production_command_without_its_settings_says_what_is_missing(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from app.cli import main

    result = CliRunner().invoke(
        main, ["db", "upgrade"], env={"PRODUCTION": "true", "INSTANCE_PATH": str(tmp_path)}
    )
    assert result.exit_code == 1
    assert "PRODUCTION=true, but it cannot start" in result.output
    assert "IDENTIFIER_HMAC_KEY is not set" in result.output
    assert "Traceback" not in result.output
