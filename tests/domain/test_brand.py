"""The brand: its From header, its stylesheet, and colours that keep text readable."""

from __future__ import annotations

import pytest

from app.config import ConfigError, Settings
from app.domain.brand import Brand, BrandError, contrast


def test_mail_comes_from_the_brand_sender_name_on_the_configured_address() -> None:
    brand = Brand(name="Example Shop", mail_sender_name="Example Shop Team")
    assert brand.sender("Consent Center <no-reply@shop.example>") == (
        "Example Shop Team <no-reply@shop.example>"
    )
    assert Brand(name="Example Shop").sender("no-reply@shop.example") == (
        "Example Shop <no-reply@shop.example>"
    )


def test_the_stylesheet_carries_the_brand_colour() -> None:
    assert "--accent: #7a1f5c;" in Brand(name="X", colour="#7A1F5C").stylesheet()


@pytest.mark.parametrize("colour", ["#ffcc00", "#7fb2e5", "blue", "#12345"])
def test_a_colour_white_text_cannot_be_read_on_is_refused(colour: str) -> None:
    with pytest.raises(BrandError):
        Brand(name="X", colour=colour)


def test_contrast_follows_wcag() -> None:
    assert contrast("#000000", "#ffffff") == pytest.approx(21)
    assert contrast("#0b5cad", "#ffffff") >= 4.5


def test_settings_read_the_brand_once_from_the_environment() -> None:
    env = {
        "SECRET_KEY": "k",
        "DATABASE_URL": "sqlite://",
        "BRAND_NAME": "Acme",
        "BRAND_COLOUR": "#224466",
        "PRIVACY_NOTICE_URL": "https://acme.example/privacy",
        "MAIL_SENDER_NAME": "Acme News",
        "MAIL_FROM": "news@acme.example",
    }
    settings = Settings.from_env(env)
    assert settings.brand.name == "Acme"
    assert settings.sender == "Acme News <news@acme.example>"
    with pytest.raises(ConfigError):
        Settings.from_env(env | {"BRAND_COLOUR": "#eeeeee"})
