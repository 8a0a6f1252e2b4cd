"""The configuration that consent rules depend on, handed to services as one value."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from app.domain.catalog import Catalog


@dataclass(frozen=True)
class Rules:
    catalog: Catalog
    identifier_key: bytes
    # Earlier identifier keys: still matched on reads, never used for writes (key rotation).
    identifier_old_keys: tuple[bytes, ...] = ()
    max_consent_age: timedelta | None = None
    single_opt_in_countries: frozenset[str] = frozenset()

    @property
    def identifier_keys(self) -> tuple[bytes, ...]:
        """Every key an identifier HMAC may have been made with, the current one first."""
        return (self.identifier_key, *self.identifier_old_keys)

    def needs_double_opt_in(self, channel: str, country: str | None) -> bool:
        """Double opt-in for every email unless the country allows single opt-in."""
        if channel != "email":
            return False
        return not (country and country.upper() in self.single_opt_in_countries)
