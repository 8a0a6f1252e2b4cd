"""The data inventory: each kind of data held, why, on what basis, how long, and who gets it.

Loaded from a YAML file (Settings.inventory_path); it is the person-facing half of the Art. 30
record, shown on the privacy pages and put into the download.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from app.domain.catalog import DEFAULT_LOCALE, Text, _text
from app.domain.vocabulary import LegalBasis


class InventoryError(ValueError):
    """The inventory file is malformed; raised at start-up."""


@dataclass(frozen=True)
class Item:
    key: str
    is_derived: bool
    legal_basis: LegalBasis
    label: Text
    purpose: Text
    retention: Text
    recipients: tuple[str, ...]
    benefit: Text = field(default_factory=lambda: Text({}))  # what the person gets for it


@dataclass(frozen=True)
class System:
    """A receiving system the deployment declares: a webhook receiver or an integration."""

    name: str
    kind: str  # webhook_receiver | integration
    receives: tuple[str, ...]  # inventory item keys


@dataclass(frozen=True)
class Inventory:
    items: tuple[Item, ...]
    security_measures: Mapping[str, tuple[str, ...]]
    systems: tuple[System, ...] = ()

    def item(self, key: str) -> Item | None:
        return next((i for i in self.items if i.key == key), None)

    def systems_receiving(self, key: str) -> tuple[System, ...]:
        return tuple(s for s in self.systems if key in s.receives)

    def receivers(self, key: str) -> tuple[str, ...]:
        """Who and what receives this datum: the recipients, then the declared systems."""
        item = self.item(key)
        recipients = item.recipients if item else ()
        return recipients + tuple(s.name for s in self.systems_receiving(key))

    def flows(self, locale: str | None) -> list[tuple[str, str, tuple[str, ...]]]:
        """Every datum with its receivers: the deployment's data map (Art. 30)."""
        return [(i.key, i.label.get(locale), self.receivers(i.key)) for i in self.items]

    def measures(self, locale: str | None) -> tuple[str, ...]:
        if locale and locale in self.security_measures:
            return self.security_measures[locale]
        return self.security_measures.get(DEFAULT_LOCALE, ())


def load_inventory(path: Path) -> Inventory:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise InventoryError(f"cannot read inventory {path}: {error}") from error
    return parse_inventory(raw)


def parse_inventory(raw: Any) -> Inventory:
    if not isinstance(raw, dict) or not isinstance(raw.get("items"), list):
        raise InventoryError("the inventory must be a mapping with a list of items")
    try:
        items = tuple(
            Item(
                key=str(spec["key"]),
                is_derived=bool(spec.get("derived", False)),
                legal_basis=LegalBasis(spec["legal_basis"]),
                label=_text(spec.get("labels")),
                purpose=_text(spec.get("purpose")),
                retention=_text(spec.get("retention")),
                recipients=tuple(str(r) for r in spec.get("recipients") or ()),
                benefit=_text(spec.get("benefit")),
            )
            for spec in raw["items"]
        )
        systems = tuple(
            System(
                name=str(spec["name"]),
                kind=str(spec.get("kind", "integration")),
                receives=tuple(str(k) for k in spec.get("receives") or ()),
            )
            for spec in raw.get("systems") or ()
        )
        measures = {
            str(locale): tuple(str(line) for line in lines)
            for locale, lines in (raw.get("security_measures") or {}).items()
        }
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise InventoryError(f"malformed inventory: {error}") from error
    keys = {i.key for i in items}
    unknown = sorted({k for s in systems for k in s.receives} - keys)
    if unknown:
        raise InventoryError(f"systems receive data the inventory does not list: {unknown}")
    return Inventory(items, measures, systems)
