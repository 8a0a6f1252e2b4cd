"""Settings: the one place that reads the environment and resolves development fallbacks."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path

from app.domain.brand import Brand, BrandError

DEFAULT_INSTANCE = Path.cwd() / "instance"
PACKAGE_DATA = Path(__file__).parent / "data"
DEFAULT_BRAND = Brand(name="Example Shop")


class ConfigError(RuntimeError):
    """A required setting is missing or malformed; raised at start-up, never later."""


@dataclass(frozen=True)
class Settings:
    database_url: str
    secret_key: str
    identifier_key: bytes
    instance_path: Path = DEFAULT_INSTANCE
    base_url: str = "http://localhost:5000"
    catalog_path: Path = PACKAGE_DATA / "catalog.yaml"
    notices_path: Path = PACKAGE_DATA / "notices.yaml"
    inventory_path: Path = PACKAGE_DATA / "inventory.yaml"
    # Mail: with no smtp_host, messages are written as .eml files to outbox_dir.
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = False
    mail_from: str = "no-reply@localhost"  # the address; the display name is the brand's
    brand: Brand = DEFAULT_BRAND
    outbox_dir: Path = DEFAULT_INSTANCE / "outbox"
    send_mail_inline: bool = False
    # Consent rules.
    max_consent_age: timedelta | None = None
    single_opt_in_countries: frozenset[str] = frozenset()
    # Lifetimes of links and tokens.
    access_token_ttl: timedelta = timedelta(hours=1)
    revocation_refresh: timedelta = timedelta(seconds=10)
    confirm_link_ttl: timedelta = timedelta(hours=72)
    preference_link_ttl: timedelta = timedelta(days=90)
    unsubscribe_link_ttl: timedelta = timedelta(days=90)
    access_link_ttl: timedelta = timedelta(minutes=30)
    access_session_idle: timedelta = timedelta(minutes=15)
    # Retention.
    pending_retention: timedelta = timedelta(days=30)
    evidence_retention: timedelta = timedelta(days=3 * 365)
    proof_retention: timedelta = timedelta(days=3 * 365)
    # Limits.
    ratelimit_storage_url: str = "memory://"
    ratelimit_enabled: bool = True
    ratelimit_key_prefix: str = "consent-center"
    # Limits in Flask-Limiter's notation ("6000/minute", "10/minute;50/hour").
    api_rate_limit: str = "6000/minute"  # per API client on /v1
    token_rate_limit: str = "60/minute"  # per IP on /oauth/token
    public_page_rate_limit: str = "120/minute"  # per IP, pages reached by emailed links
    max_content_length: int = 2 * 1024 * 1024
    public_form_rate: str = "5/minute;30/hour"  # per IP, on the public opt-in and confirm forms
    audit_signing_key_path: Path | None = None
    checkpoint_every: int = 1000

    @property
    def sender(self) -> str:
        """The From header of every mail: the brand's sender name on MAIL_FROM's address."""
        return self.brand.sender(self.mail_from)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def with_overrides(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        instance = Path(env.get("INSTANCE_PATH", str(DEFAULT_INSTANCE))).resolve()
        secret_key = env.get("SECRET_KEY") or _development_secret(instance)
        identifier_key = env.get("IDENTIFIER_HMAC_KEY")
        port = env.get("PORT", "5000")
        return cls(
            database_url=_database_url(env.get("DATABASE_URL"), instance),
            secret_key=secret_key,
            identifier_key=(
                identifier_key.encode() if identifier_key else derive_key(secret_key, "identifiers")
            ),
            instance_path=instance,
            base_url=env.get("BASE_URL", f"http://localhost:{port}").rstrip("/"),
            catalog_path=_path(env, "CATALOG_PATH", PACKAGE_DATA / "catalog.yaml"),
            notices_path=_path(env, "NOTICES_PATH", PACKAGE_DATA / "notices.yaml"),
            inventory_path=_path(env, "INVENTORY_PATH", PACKAGE_DATA / "inventory.yaml"),
            smtp_host=env.get("SMTP_HOST") or None,
            smtp_port=_int(env, "SMTP_PORT", 25),
            smtp_username=env.get("SMTP_USERNAME") or None,
            smtp_password=env.get("SMTP_PASSWORD") or None,
            smtp_starttls=_bool(env, "SMTP_STARTTLS", False),
            mail_from=env.get("MAIL_FROM", "no-reply@localhost"),
            brand=_brand(env),
            outbox_dir=_path(env, "OUTBOX_DIR", instance / "outbox"),
            send_mail_inline=_bool(env, "SEND_MAIL_INLINE", False),
            max_consent_age=_days(env, "MAX_CONSENT_AGE_DAYS", None),
            single_opt_in_countries=frozenset(
                c.strip().upper()
                for c in env.get("SINGLE_OPT_IN_COUNTRIES", "").split(",")
                if c.strip()
            ),
            access_token_ttl=timedelta(seconds=_int(env, "ACCESS_TOKEN_TTL_SECONDS", 3600)),
            confirm_link_ttl=timedelta(hours=_int(env, "CONFIRM_LINK_TTL_HOURS", 72)),
            preference_link_ttl=timedelta(days=_int(env, "PREFERENCE_LINK_TTL_DAYS", 90)),
            unsubscribe_link_ttl=timedelta(days=_int(env, "UNSUBSCRIBE_LINK_TTL_DAYS", 90)),
            access_link_ttl=timedelta(minutes=_int(env, "ACCESS_LINK_TTL_MINUTES", 30)),
            pending_retention=timedelta(days=_int(env, "PENDING_RETENTION_DAYS", 30)),
            evidence_retention=timedelta(days=_int(env, "EVIDENCE_RETENTION_DAYS", 3 * 365)),
            proof_retention=timedelta(days=_int(env, "PROOF_RETENTION_DAYS", 3 * 365)),
            ratelimit_storage_url=env.get("RATELIMIT_STORAGE_URL", "memory://"),
            ratelimit_enabled=_bool(env, "RATELIMIT_ENABLED", True),
            public_form_rate=env.get("PUBLIC_FORM_RATE", "5/minute;30/hour"),
            ratelimit_key_prefix=env.get("RATELIMIT_KEY_PREFIX", "consent-center"),
            api_rate_limit=env.get("API_RATE_LIMIT", "6000/minute"),
            token_rate_limit=env.get("TOKEN_RATE_LIMIT", "60/minute"),
            public_page_rate_limit=env.get("PUBLIC_PAGE_RATE_LIMIT", "120/minute"),
            audit_signing_key_path=_path(
                env, "AUDIT_SIGNING_KEY_PATH", instance / "audit-signing-key.json"
            ),
            checkpoint_every=_int(env, "CHECKPOINT_EVERY", 1000),
        )


def derive_key(secret: str, purpose: str) -> bytes:
    """A key for one purpose, derived from SECRET_KEY so that one secret configures all."""
    return hmac.new(secret.encode(), f"consent-center:{purpose}".encode(), hashlib.sha256).digest()


def _brand(env: Mapping[str, str]) -> Brand:
    try:
        return Brand(
            name=env.get("BRAND_NAME") or DEFAULT_BRAND.name,
            colour=env.get("BRAND_COLOUR") or DEFAULT_BRAND.colour,
            logo_path=env.get("BRAND_LOGO_PATH") or None,
            privacy_notice_url=env.get("PRIVACY_NOTICE_URL") or None,
            mail_sender_name=env.get("MAIL_SENDER_NAME") or None,
        )
    except BrandError as error:
        raise ConfigError(str(error)) from error


def _development_secret(instance: Path) -> str:
    """Generated once and kept under instance/, so links survive a restart in development."""
    path = instance / "secret_key"
    if path.exists():
        return path.read_text().strip()
    instance.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48)
    path.write_text(secret)
    path.chmod(0o600)
    return secret


def _database_url(value: str | None, instance: Path) -> str:
    if not value:
        instance.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{instance / 'consent-center.db'}"
    if value.startswith("postgres://"):
        value = "postgresql+psycopg://" + value.removeprefix("postgres://")
    elif value.startswith("postgresql://"):
        value = "postgresql+psycopg://" + value.removeprefix("postgresql://")
    return value


def _path(env: Mapping[str, str], name: str, default: Path) -> Path:
    return Path(env[name]) if env.get(name) else default


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as error:
        raise ConfigError(f"{name} must be a whole number, not {raw!r}") from error


def _days(env: Mapping[str, str], name: str, default: int | None) -> timedelta | None:
    raw = env.get(name)
    if not raw:
        return None if default is None else timedelta(days=default)
    return timedelta(days=_int(env, name, 0))


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in {"1", "true", "yes", "on"}:
        return True
    if raw.lower() in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{name} must be true or false, not {raw!r}")
