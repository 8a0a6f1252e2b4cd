"""The shipped catalog and the catalog rules."""

from __future__ import annotations

import pytest

from app.domain.catalog import (
    LOCALES,
    Catalog,
    CatalogError,
    Category,
    Channel,
    Purpose,
    parse_catalog,
)
from app.domain.errors import UnknownTopicError


def test_the_default_catalog_has_what_the_contract_names(catalog: Catalog) -> None:
    assert set(catalog.channels) == {"email", "sms", "push", "phone", "post"}
    assert {"newsletter", "offers", "product_updates"} <= set(catalog.categories)
    assert catalog.categories["order_updates"].is_transactional
    assert catalog.categories["account_security"].is_transactional
    assert not catalog.categories["newsletter"].is_transactional
    assert {"personalization", "partner_sharing"} <= set(catalog.purposes)
    assert catalog.gpc_purposes() == ["partner_sharing"]


def test_every_label_is_in_every_locale(catalog: Catalog) -> None:
    entries: list[Channel | Category | Purpose] = [
        *catalog.channels.values(),
        *catalog.categories.values(),
        *catalog.purposes.values(),
    ]
    for entry in entries:
        assert set(entry.label.by_locale) == set(LOCALES), entry.name


def test_a_category_may_only_use_its_channels(catalog: Catalog) -> None:
    assert catalog.require_pair("email", "newsletter").name == "newsletter"
    with pytest.raises(UnknownTopicError):
        catalog.require_pair("sms", "newsletter")
    with pytest.raises(UnknownTopicError):
        catalog.require_pair("email", "nope")
    with pytest.raises(UnknownTopicError):
        catalog.require_pair("fax", "newsletter")


def test_marketing_pairs_leave_out_transactional_categories(catalog: Catalog) -> None:
    pairs = catalog.marketing_pairs()
    assert ("email", "newsletter") in pairs
    assert all(category != "order_updates" for _, category in pairs)


def test_a_category_naming_an_unknown_channel_is_rejected_at_start() -> None:
    raw = {
        "channels": {"email": {"labels": {"en": "Email"}}},
        "categories": {"news": {"kind": "marketing", "channels": ["fax"]}},
    }
    with pytest.raises(CatalogError):
        parse_catalog(raw)
