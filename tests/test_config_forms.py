"""Settings for the public forms come from the environment like every other setting."""

from __future__ import annotations

from app.config import Settings

BASE = {"DATABASE_URL": "sqlite://", "SECRET_KEY": "s" * 32}


def test_the_public_form_rate_has_a_default_and_can_be_set() -> None:
    assert Settings.from_env(BASE).public_form_rate == "5/minute;30/hour"
    tuned = Settings.from_env(BASE | {"PUBLIC_FORM_RATE": "2/minute"})
    assert tuned.public_form_rate == "2/minute"
