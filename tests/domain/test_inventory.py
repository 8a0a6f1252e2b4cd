"""The data inventory file: every item complete in four languages, malformed files refused."""

from __future__ import annotations

import pytest

from app.config import Settings
from app.domain.catalog import LOCALES
from app.domain.inventory import InventoryError, load_inventory, parse_inventory


def test_the_shipped_inventory_says_what_why_how_long_and_to_whom_in_every_language() -> None:
    inventory = load_inventory(Settings.__dataclass_fields__["inventory_path"].default)  # type: ignore[arg-type]
    for item in inventory.items:
        for text in (item.label, item.purpose, item.retention, item.benefit):
            assert set(text.by_locale) >= set(LOCALES), item.key
        assert item.recipients, item.key
    assert {i.key for i in inventory.items if i.is_derived} == {"estimated_country"}
    assert all(inventory.measures(locale) for locale in LOCALES)


@pytest.mark.parametrize(
    "raw", [None, {"items": "no"}, {"items": [{"key": "x", "legal_basis": "vibes"}]}]
)
def test_a_malformed_inventory_is_refused(raw: object) -> None:
    with pytest.raises(InventoryError):
        parse_inventory(raw)
