"""The data map's geometry: one node per datum and receiver, one curve per flow."""

from __future__ import annotations

import pytest

from app.domain.datamap import data_map
from app.domain.inventory import InventoryError, parse_inventory


def test_each_flow_joins_its_datum_to_its_receiver_and_receivers_are_shared() -> None:
    drawn = data_map(
        [("email", "Email address", ["Shop", "Mail provider"]), ("locale", "Language", ["Shop"])]
    )
    assert [n.label for n in drawn.data] == ["Email address", "Language"]
    assert [n.label for n in drawn.receivers] == ["Shop", "Mail provider"]
    assert [f.label for f in drawn.flows] == [
        "Email address → Shop",
        "Email address → Mail provider",
        "Language → Shop",
    ]
    shop = drawn.receivers[0]
    assert drawn.flows[2].path.endswith(f"{shop.x:g},{shop.y + shop.height / 2:g}")
    assert drawn.height >= 2 * 30


def test_a_long_label_is_shortened_in_the_box_and_whole_in_its_title() -> None:
    label = "Supervisory authorities and courts, only if we must prove consent"
    (node,) = data_map([("x", "X", [label])]).receivers
    assert node.label == label
    assert len(node.short) <= 44
    assert node.short.endswith("…")


def test_declared_systems_receive_only_listed_data() -> None:
    raw = {
        "items": [{"key": "email_address", "legal_basis": "consent", "recipients": ["Shop"]}],
        "systems": [{"name": "CRM", "kind": "webhook_receiver", "receives": ["email_address"]}],
    }
    inventory = parse_inventory(raw)
    assert inventory.receivers("email_address") == ("Shop", "CRM")
    raw["systems"][0]["receives"] = ["shoe_size"]
    with pytest.raises(InventoryError, match="shoe_size"):
        parse_inventory(raw)
