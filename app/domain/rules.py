"""The configuration that consent rules depend on, handed to services as one value."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from app.domain.catalog import Catalog


@dataclass(frozen=True)
class Rules:
    catalog: Catalog
    identifier_key: bytes
    max_consent_age: timedelta | None = None
    single_opt_in_countries: frozenset[str] = frozenset()

    def needs_double_opt_in(self, channel: str, country: str | None) -> bool:
        """Double opt-in for every email unless the country allows single opt-in."""
        if channel != "email":
            return False
        return not (country and country.upper() in self.single_opt_in_countries)
