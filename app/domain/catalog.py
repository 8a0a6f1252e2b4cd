"""The catalog: which channels, categories and purposes exist, and which pairs are allowed."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from app.domain.errors import UnknownTopicError
from app.domain.vocabulary import CategoryKind, LegalBasis

# The languages the service speaks (pages, mail, notices), each named in itself for its menu.
LANGUAGES = (("en", "English"), ("es", "Español"), ("it", "Italiano"), ("de", "Deutsch"))
LOCALES = tuple(code for code, _ in LANGUAGES)
DEFAULT_LOCALE = "en"


@dataclass(frozen=True)
class Text:
    """A text in several locales; falls back to English, then to any."""

    by_locale: Mapping[str, str]

    def get(self, locale: str | None) -> str:
        if locale and locale in self.by_locale:
            return self.by_locale[locale]
        return self.by_locale.get(DEFAULT_LOCALE) or next(iter(self.by_locale.values()), "")


@dataclass(frozen=True)
class Channel:
    name: str
    label: Text
    description: Text
    # The identifier kind that reaches a person on this channel (phone for sms): the
    # preference page offers the channel only to someone it holds one of that kind for.
    # None: nothing held here is needed (push: the app on the device holds what reaches them).
    contact: str | None = None


@dataclass(frozen=True)
class Category:
    name: str
    kind: CategoryKind
    channels: tuple[str, ...]
    legal_basis: LegalBasis
    label: Text
    description: Text
    recipients: tuple[str, ...] = ()
    retention: Text = field(default_factory=lambda: Text({}))

    @property
    def is_transactional(self) -> bool:
        return self.kind is CategoryKind.TRANSACTIONAL


@dataclass(frozen=True)
class Purpose:
    name: str
    legal_basis: LegalBasis
    is_gpc_opt_out: bool
    label: Text
    description: Text
    recipients: tuple[str, ...] = ()
    retention: Text = field(default_factory=lambda: Text({}))


@dataclass(frozen=True)
class Catalog:
    channels: Mapping[str, Channel]
    categories: Mapping[str, Category]
    purposes: Mapping[str, Purpose]
    controller: Mapping[str, str] = field(default_factory=dict)

    def reachable_channels(self, held_kinds: Collection[str]) -> frozenset[str]:
        """The channels a person can be reached on with the identifier kinds held for them."""
        return frozenset(
            c.name for c in self.channels.values() if c.contact is None or c.contact in held_kinds
        )

    def require_pair(self, channel: str, category: str) -> Category:
        """The category, if it exists and may use the channel; UnknownTopicError otherwise."""
        self.require_channel(channel)
        found = self.categories.get(category)
        if found is None:
            raise UnknownTopicError(
                f"Unknown category {category!r}.", {"category": [f"Unknown category {category!r}."]}
            )
        if channel not in found.channels:
            message = f"Category {category!r} is not sent on channel {channel!r}."
            raise UnknownTopicError(message, {"category": [message]})
        return found

    def require_channel(self, channel: str) -> Channel:
        found = self.channels.get(channel)
        if found is None:
            message = f"Unknown channel {channel!r}."
            raise UnknownTopicError(message, {"channel": [message]})
        return found

    def require_purpose(self, purpose: str) -> Purpose:
        found = self.purposes.get(purpose)
        if found is None:
            message = f"Unknown purpose {purpose!r}."
            raise UnknownTopicError(message, {"purpose": [message]})
        return found

    def marketing_pairs(self) -> list[tuple[str, str]]:
        """Every (channel, category) a person can opt into, in catalog order."""
        return [
            (channel, category.name)
            for category in self.categories.values()
            if not category.is_transactional
            for channel in category.channels
        ]

    def gpc_purposes(self) -> list[str]:
        return [p.name for p in self.purposes.values() if p.is_gpc_opt_out]

    def as_dict(self) -> dict[str, Any]:
        """The catalog as data, for the API and the DPO's Art. 30 record."""
        return {
            "controller": dict(self.controller),
            "channels": [
                {"name": c.name, "labels": dict(c.label.by_locale)} for c in self.channels.values()
            ],
            "categories": [
                {
                    "name": c.name,
                    "kind": str(c.kind),
                    "channels": list(c.channels),
                    "legal_basis": str(c.legal_basis),
                    "labels": dict(c.label.by_locale),
                    "descriptions": dict(c.description.by_locale),
                    "recipients": list(c.recipients),
                    "retention": dict(c.retention.by_locale),
                }
                for c in self.categories.values()
            ],
            "purposes": [
                {
                    "name": p.name,
                    "legal_basis": str(p.legal_basis),
                    "gpc_opt_out": p.is_gpc_opt_out,
                    "labels": dict(p.label.by_locale),
                    "descriptions": dict(p.description.by_locale),
                    "recipients": list(p.recipients),
                    "retention": dict(p.retention.by_locale),
                }
                for p in self.purposes.values()
            ],
        }


class CatalogError(ValueError):
    """The catalog file is malformed; raised at start-up."""


def load_catalog(path: Path) -> Catalog:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise CatalogError(f"cannot read catalog {path}: {error}") from error
    return parse_catalog(raw)


def parse_catalog(raw: Any) -> Catalog:
    if not isinstance(raw, dict):
        raise CatalogError("the catalog must be a mapping")
    try:
        channels = {
            name: Channel(
                name,
                _text(spec.get("labels")),
                _text(spec.get("descriptions")),
                str(spec["contact"]) if spec.get("contact") else None,
            )
            for name, spec in (raw.get("channels") or {}).items()
        }
        categories = {}
        for name, spec in (raw.get("categories") or {}).items():
            allowed = tuple(spec["channels"])
            unknown = [c for c in allowed if c not in channels]
            if unknown:
                raise CatalogError(f"category {name} names unknown channels {unknown}")
            categories[name] = Category(
                name=name,
                kind=CategoryKind(spec.get("kind", "marketing")),
                channels=allowed,
                legal_basis=LegalBasis(spec.get("legal_basis", "consent")),
                label=_text(spec.get("labels")),
                description=_text(spec.get("descriptions")),
                recipients=tuple(spec.get("recipients") or ()),
                retention=_text(spec.get("retention")),
            )
        purposes = {
            name: Purpose(
                name=name,
                legal_basis=LegalBasis(spec.get("legal_basis", "consent")),
                is_gpc_opt_out=bool(spec.get("gpc_opt_out", False)),
                label=_text(spec.get("labels")),
                description=_text(spec.get("descriptions")),
                recipients=tuple(spec.get("recipients") or ()),
                retention=_text(spec.get("retention")),
            )
            for name, spec in (raw.get("purposes") or {}).items()
        }
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise CatalogError(f"malformed catalog: {error}") from error
    if not channels or not categories:
        raise CatalogError("the catalog needs at least one channel and one category")
    clash = set(purposes) & (set(categories) | set(channels))
    if clash:
        raise CatalogError(f"names used twice: {sorted(clash)}")
    return Catalog(channels, categories, purposes, dict(raw.get("controller") or {}))


def _text(value: Any) -> Text:
    if value is None:
        return Text({})
    if isinstance(value, str):
        return Text({DEFAULT_LOCALE: value})
    return Text({str(k): str(v) for k, v in value.items()})
