"""Settings for the public forms come from the environment like every other setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from app import create_app
from app.config import ConfigError, Settings

BASE = {"DATABASE_URL": "sqlite://", "SECRET_KEY": "s" * 32}


def test_the_public_form_rate_has_a_default_and_can_be_set() -> None:
    assert Settings.from_env(BASE).public_form_rate == "5/minute;30/hour"
    tuned = Settings.from_env(BASE | {"PUBLIC_FORM_RATE": "2/minute"})
    assert tuned.public_form_rate == "2/minute"


def test_single_opt_in_for_germany_is_refused_at_start_up() -> None:
    with pytest.raises(ConfigError, match=r"DE.*SINGLE_OPT_IN_OVERRIDE"):
        Settings.from_env(BASE | {"SINGLE_OPT_IN_COUNTRIES": "US,DE"})


def test_single_opt_in_for_germany_starts_with_the_explicit_override() -> None:
    settings = Settings.from_env(
        BASE | {"SINGLE_OPT_IN_COUNTRIES": "DE", "SINGLE_OPT_IN_OVERRIDE": "DE"}
    )
    assert settings.single_opt_in_countries == {"DE"}


def test_create_app_refuses_settings_made_in_code_too(tmp_path: Path) -> None:
    settings = Settings(
        database_url="sqlite://",
        secret_key="s" * 32,
        identifier_key=b"k",
        instance_path=tmp_path,
        single_opt_in_countries=frozenset({"IT"}),
    )
    with pytest.raises(ConfigError, match="IT"):
        create_app(settings)
