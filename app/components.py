"""What the settings are turned into once, at start-up, for the app and the CLI alike.

The consent rules, the audit signing-key ring and the access-token key are built here once per
process: no request reads a key from disk or derives one again.
"""

from __future__ import annotations

from dataclasses import dataclass

from joserfc.jwk import OctKey

from app.config import Settings, check_opt_in_policy, derive_key
from app.domain.catalog import Catalog, load_catalog
from app.domain.rules import Rules
from app.services.audit import checkpoints


@dataclass(frozen=True)
class Components:
    settings: Settings
    rules: Rules
    signing_keys: checkpoints.SigningKeys
    access_token_key: OctKey

    @property
    def catalog(self) -> Catalog:
        return self.rules.catalog


def build(settings: Settings, catalog: Catalog | None = None) -> Components:
    check_opt_in_policy(settings)  # settings made in code, not from the environment, too
    rules = Rules(
        catalog=catalog or load_catalog(settings.catalog_path),
        identifier_key=settings.identifier_key,
        identifier_old_keys=settings.identifier_old_keys,
        max_consent_age=settings.max_consent_age,
        single_opt_in_countries=settings.single_opt_in_countries,
    )
    keys = checkpoints.load_keys(
        settings.signing_key_path,
        settings.audit_signing_old_key_paths,
        create=not settings.production,
    )
    token_key = OctKey.import_key(derive_key(settings.secret_key, "access-tokens"))
    return Components(settings, rules, keys, token_key)
