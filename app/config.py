"""Settings: the one place that reads the environment and resolves development fallbacks.

Each setting is declared once below, as a field of `Settings`: its name, type, default, the
environment variable that sets it and what it means. `Settings.from_env` and the configuration
reference (docs/configuration.md, written by `consent-center config-reference`) both come from
that declaration.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections.abc import Callable, Iterator, Mapping
from dataclasses import MISSING, Field, dataclass, field, fields, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from app.database import Timeouts
from app.domain.brand import Brand, BrandError
from app.domain.opt_in_policy import load_policy, refusals

DEFAULT_INSTANCE = Path.cwd() / "instance"
PACKAGE_DATA = Path(__file__).parent / "data"


class ConfigError(RuntimeError):
    """A required setting is missing or malformed; raised at start-up, never later."""


@dataclass(frozen=True)
class Kind:
    """How one setting's environment text becomes its value, and how its default is shown."""

    name: str
    parse: Callable[[str], Any]
    show: Callable[[Any], str] = str


def _boolean(raw: str) -> bool:
    if raw.lower() in {"1", "true", "yes", "on"}:
        return True
    if raw.lower() in {"0", "false", "no", "off"}:
        return False
    raise ValueError("must be true or false")


def _whole(raw: str) -> int:
    try:
        return int(raw)
    except ValueError as error:
        raise ValueError("must be a whole number") from error


def _duration(unit: str) -> Kind:
    return Kind(
        f"whole {unit}",
        lambda raw: timedelta(**{unit: _whole(raw)}),
        lambda value: str(int(value / timedelta(**{unit: 1}))),
    )


def _items(raw: str) -> list[str]:
    return [item.strip() for item in raw.split(",") if item.strip()]


TEXT = Kind("text", str)
OPTIONAL_TEXT = Kind("text", lambda raw: raw or None, lambda value: "" if value is None else value)
INTEGER = Kind("whole number", _whole)
BOOLEAN = Kind("true/false", _boolean, lambda value: "true" if value else "false")
PATH = Kind("path", Path)
OPTIONAL_DAYS = Kind(
    "whole days", lambda raw: timedelta(days=_whole(raw)), lambda v: "" if v is None else str(v)
)
COUNTRIES = Kind(
    "comma-separated country codes",
    lambda raw: frozenset(code.upper() for code in _items(raw)),
    lambda value: ",".join(sorted(value)),
)
KEY = Kind("secret text", lambda raw: raw.encode(), lambda value: "")
KEYS = Kind(
    "comma-separated secrets",
    lambda raw: tuple(item.encode() for item in _items(raw)),
    lambda value: "",
)
PATHS = Kind(
    "comma-separated paths",
    lambda raw: tuple(Path(item) for item in _items(raw)),
    lambda value: ",".join(str(p) for p in value),
)
MILLISECONDS = _duration("milliseconds")
SECONDS = _duration("seconds")
MINUTES = _duration("minutes")
HOURS = _duration("hours")
DAYS = _duration("days")


def setting(
    env: str, kind: Kind, meaning: str, default: Any = MISSING, *, fallback: str = ""
) -> Any:
    """One setting: `env` sets it, `meaning` is its line in the reference; `fallback` says, for a
    setting whose default is resolved at start-up, what that default is."""
    metadata = {"env": env, "kind": kind, "meaning": meaning, "fallback": fallback}
    if default is MISSING:
        return field(metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass(frozen=True)
class Settings:
    database_url: str = setting(
        "DATABASE_URL",
        TEXT,
        "SQLAlchemy URL of the database; postgres:// and postgresql:// mean psycopg 3.",
        fallback="SQLite file consent-center.db under INSTANCE_PATH",
    )
    secret_key: str = setting(
        "SECRET_KEY",
        TEXT,
        "Signs links, sessions and access tokens.",
        fallback="generated once and kept in INSTANCE_PATH/secret_key (not in production)",
    )
    identifier_key: bytes = setting(
        "IDENTIFIER_HMAC_KEY",
        KEY,
        "Key of the identifier HMACs that find subjects and suppressions; new writes use it.",
        fallback="derived from SECRET_KEY (not in production)",
    )
    identifier_old_keys: tuple[bytes, ...] = setting(
        "IDENTIFIER_HMAC_OLD_KEYS",
        KEYS,
        "Earlier identifier keys, still matched on reads (suppressions made under them hold);"
        " `consent-center rekey-identifiers` moves what it can to the current key.",
        (),
    )
    # A write that cannot get the chain lock answers 503 with Retry-After well before
    # gunicorn's own timeout kills the worker.
    db_lock_timeout: timedelta = setting(
        "DB_LOCK_TIMEOUT_MS",
        MILLISECONDS,
        "Longest wait for a lock (PostgreSQL lock_timeout, SQLite busy timeout).",
        timedelta(seconds=5),
    )
    db_statement_timeout: timedelta = setting(
        "DB_STATEMENT_TIMEOUT_MS",
        MILLISECONDS,
        "Longest run of one statement (PostgreSQL statement_timeout).",
        timedelta(seconds=25),
    )
    db_idle_in_transaction_timeout: timedelta = setting(
        "DB_IDLE_IN_TRANSACTION_TIMEOUT_MS",
        MILLISECONDS,
        "Longest idle time inside a transaction (PostgreSQL"
        " idle_in_transaction_session_timeout); a stuck process then frees its locks.",
        timedelta(seconds=60),
    )
    production: bool = setting(
        "PRODUCTION",
        BOOLEAN,
        "Production mode: refuse to start without SECRET_KEY, IDENTIFIER_HMAC_KEY, a"
        " PostgreSQL DATABASE_URL and an existing signing key outside the instance folder.",
        False,
    )
    instance_path: Path = setting(
        "INSTANCE_PATH", PATH, "Folder for development files.", DEFAULT_INSTANCE
    )
    port: int = setting("PORT", INTEGER, "Port the default BASE_URL names.", 5000)
    base_url: str = setting(
        "BASE_URL",
        TEXT,
        "Prefix of every link the service emails or returns.",
        "http://localhost:5000",
        fallback="http://localhost:PORT",
    )
    catalog_path: Path = setting(
        "CATALOG_PATH", PATH, "Channels, categories and purposes.", PACKAGE_DATA / "catalog.yaml"
    )
    notices_path: Path = setting(
        "NOTICES_PATH",
        PATH,
        "Notice texts published by `db upgrade`.",
        PACKAGE_DATA / "notices.yaml",
    )
    inventory_path: Path = setting(
        "INVENTORY_PATH",
        PATH,
        "What is held, why, by whom, how long (the Art. 30 record).",
        PACKAGE_DATA / "inventory.yaml",
    )
    smtp_host: str | None = setting(
        "SMTP_HOST", OPTIONAL_TEXT, "SMTP server; unset writes .eml files to OUTBOX_DIR.", None
    )
    smtp_port: int = setting("SMTP_PORT", INTEGER, "SMTP port.", 25)
    smtp_username: str | None = setting("SMTP_USERNAME", OPTIONAL_TEXT, "SMTP login.", None)
    smtp_password: str | None = setting("SMTP_PASSWORD", OPTIONAL_TEXT, "SMTP password.", None)
    smtp_starttls: bool = setting("SMTP_STARTTLS", BOOLEAN, "Use STARTTLS.", False)
    mail_from: str = setting(
        "MAIL_FROM",
        TEXT,
        "Sender address of every mail; its display name is MAIL_SENDER_NAME, else BRAND_NAME.",
        "no-reply@localhost",
    )
    brand_name: str = setting(
        "BRAND_NAME", TEXT, "The brand on every page header, footer and mail.", "Example Shop"
    )
    brand_colour: str = setting(
        "BRAND_COLOUR",
        TEXT,
        "The brand colour (#rrggbb) of buttons and links; needs 4.5:1 against white.",
        "#0b5cad",
    )
    brand_logo_path: str | None = setting(
        "BRAND_LOGO_PATH",
        OPTIONAL_TEXT,
        "An image file shown beside the brand name on every page.",
        None,
        fallback="the shipped example logo",
    )
    privacy_notice_url: str | None = setting(
        "PRIVACY_NOTICE_URL",
        OPTIONAL_TEXT,
        "The privacy notice every page links to.",
        None,
        fallback="/privacy-notice, the published privacy-notice text",
    )
    mail_sender_name: str | None = setting(
        "MAIL_SENDER_NAME",
        OPTIONAL_TEXT,
        "Display name in the From of every mail.",
        None,
        fallback="BRAND_NAME",
    )
    outbox_dir: Path = setting(
        "OUTBOX_DIR",
        PATH,
        "Where mail goes as .eml files without SMTP_HOST.",
        DEFAULT_INSTANCE / "outbox",
        fallback="INSTANCE_PATH/outbox",
    )
    send_mail_inline: bool = setting(
        "SEND_MAIL_INLINE",
        BOOLEAN,
        "The web process sends mail itself (no separate worker).",
        False,
    )
    max_consent_age: timedelta | None = setting(
        "MAX_CONSENT_AGE_DAYS",
        OPTIONAL_DAYS,
        "Consent older than this checks as `expired`; unset: no maximum.",
        None,
    )
    single_opt_in_countries: frozenset[str] = setting(
        "SINGLE_OPT_IN_COUNTRIES",
        COUNTRIES,
        "Countries where email opt-in needs no confirmation. A country the shipped policy "
        "(app/data/opt_in_policy.yaml: DE, IT, CA, KR) requires double opt-in for is refused "
        "at start-up unless SINGLE_OPT_IN_OVERRIDE names it too.",
        frozenset(),
    )
    single_opt_in_override: frozenset[str] = setting(
        "SINGLE_OPT_IN_OVERRIDE",
        COUNTRIES,
        "Countries allowed single opt-in although the shipped policy requires double opt-in "
        "there: the operator's explicit decision.",
        frozenset(),
    )
    access_token_ttl: timedelta = setting(
        "ACCESS_TOKEN_TTL_SECONDS", SECONDS, "Lifetime of an API access token.", timedelta(hours=1)
    )
    revocation_refresh: timedelta = setting(
        "REVOCATION_REFRESH_SECONDS",
        SECONDS,
        "A revoked client is refused within this.",
        timedelta(seconds=10),
    )
    confirm_link_ttl: timedelta = setting(
        "CONFIRM_LINK_TTL_HOURS", HOURS, "Lifetime of a confirmation link.", timedelta(hours=72)
    )
    preference_link_ttl: timedelta = setting(
        "PREFERENCE_LINK_TTL_DAYS", DAYS, "Lifetime of a preference link.", timedelta(days=90)
    )
    unsubscribe_link_ttl: timedelta = setting(
        "UNSUBSCRIBE_LINK_TTL_DAYS", DAYS, "Lifetime of an unsubscribe link.", timedelta(days=90)
    )
    access_link_ttl: timedelta = setting(
        "ACCESS_LINK_TTL_MINUTES",
        MINUTES,
        "Lifetime of the emailed privacy-center link.",
        timedelta(minutes=30),
    )
    access_session_idle: timedelta = setting(
        "ACCESS_SESSION_IDLE_MINUTES",
        MINUTES,
        "Idle time after which a privacy-center or DPO session ends.",
        timedelta(minutes=15),
    )
    pending_retention: timedelta = setting(
        "PENDING_RETENTION_DAYS",
        DAYS,
        "Unconfirmed requests are purged after this.",
        timedelta(days=30),
    )
    access_log_retention: timedelta = setting(
        "ACCESS_LOG_RETENTION_DAYS",
        DAYS,
        "The page-access log (when and from where a person's pages were opened) goes after this.",
        timedelta(days=30),
    )
    mail_retention: timedelta = setting(
        "MAIL_RETENTION_DAYS",
        DAYS,
        "Mail undelivered after this is given up (address and text cleared); .eml files"
        " in OUTBOX_DIR go after it too.",
        timedelta(days=7),
    )
    webhook_log_retention: timedelta = setting(
        "WEBHOOK_LOG_RETENTION_DAYS",
        DAYS,
        "A delivered webhook delivery leaves the delivery log after this (the changes feed"
        " keeps the change); pending and failed ones stay.",
        timedelta(days=30),
    )
    evidence_retention: timedelta = setting(
        "EVIDENCE_RETENTION_DAYS",
        DAYS,
        "Evidence is kept this long after its need.",
        timedelta(days=3 * 365),
    )
    proof_retention: timedelta = setting(
        "PROOF_RETENTION_DAYS",
        DAYS,
        "Proof is kept this long after processing ends.",
        timedelta(days=3 * 365),
    )
    ratelimit_storage_url: str = setting(
        "RATELIMIT_STORAGE_URL",
        TEXT,
        "Where limits count: database:// (this service's database, shared by every worker and"
        " instance; on SQLite a file beside it, <file>-ratelimits), redis://… (shared), or"
        " memory:// (this process only).",
        "database://",
    )
    ratelimit_enabled: bool = setting("RATELIMIT_ENABLED", BOOLEAN, "Apply rate limits.", True)
    ratelimit_key_prefix: str = setting(
        "RATELIMIT_KEY_PREFIX", TEXT, "Prefix of the limit keys in Redis.", "consent-center"
    )
    api_rate_limit: str = setting(
        "API_RATE_LIMIT",
        TEXT,
        "Per API client on /v1 (Flask-Limiter notation). A limit of 1,000 or more a window is"
        " counted a lease of hits at a time (1/500 of it, at most 16): docs/hardening.md.",
        "6000/minute",
    )
    token_rate_limit: str = setting(
        "TOKEN_RATE_LIMIT", TEXT, "Per IP on /oauth/token.", "60/minute"
    )
    public_page_rate_limit: str = setting(
        "PUBLIC_PAGE_RATE_LIMIT",
        TEXT,
        "Per link (token, not IP) on the pages emailed links open: /confirm, /p, /u, /access.",
        "30/minute;300/hour",
    )
    public_form_rate: str = setting(
        "PUBLIC_FORM_RATE",
        TEXT,
        "Per IP, one budget shared by the public forms that send mail.",
        "5/minute;30/hour",
    )
    mailbox_rate: str = setting(
        "MAILBOX_RATE",
        TEXT,
        "Per target mailbox (its plus and dot variants as one) on the forms that send mail.",
        "3/hour;6/day",
    )
    max_content_length: int = setting(
        "MAX_CONTENT_LENGTH", INTEGER, "Largest request body, in bytes.", 2 * 1024 * 1024
    )
    import_max_bytes: int = setting(
        "IMPORT_MAX_BYTES",
        INTEGER,
        "Largest list uploaded to POST /v1/imports, in bytes (streamed, never held in memory).",
        2 * 1024**3,
    )
    repermission_per_minute: int = setting(
        "REPERMISSION_PER_MINUTE",
        INTEGER,
        "Confirmation mails a re-permission run sends per minute (`consent-center repermission`).",
        60,
    )
    audit_signing_key_path: Path | None = setting(
        "AUDIT_SIGNING_KEY_PATH",
        PATH,
        "The private key (JWK) that signs checkpoints; made there if absent (not in production).",
        None,
        fallback="INSTANCE_PATH/audit-signing-key.json",
    )
    audit_signing_old_key_paths: tuple[Path, ...] = setting(
        "AUDIT_SIGNING_OLD_KEY_PATHS",
        PATHS,
        "Earlier signing keys: published in the JWKS so that old checkpoints still verify.",
        (),
    )
    checkpoint_every: int = setting(
        "CHECKPOINT_EVERY",
        INTEGER,
        "Events between checkpoints (`audit checkpoint --if-due`).",
        1000,
    )
    trusted_proxy_hops: int = setting(
        "TRUSTED_PROXY_HOPS",
        INTEGER,
        "Reverse proxies in front of the service whose X-Forwarded-* headers are believed.",
        0,
    )
    metrics_token: str | None = setting(
        "METRICS_TOKEN",
        OPTIONAL_TEXT,
        "When set, GET /metrics needs `Authorization: Bearer <token>`.",
        None,
    )
    metrics_open: bool | None = setting(
        "METRICS_OPEN",
        BOOLEAN,
        "GET /metrics without a token.",
        None,
        fallback="true in development, false in production",
    )
    prometheus_multiproc_dir: Path | None = setting(
        "PROMETHEUS_MULTIPROC_DIR",
        PATH,
        "Folder where every gunicorn worker keeps its metrics (gunicorn.conf.py sets it).",
        None,
    )
    log_format: str = setting("LOG_FORMAT", TEXT, "`json` (one object a line) or `text`.", "json")
    tracing: bool = setting(
        "OTEL_TRACING",
        BOOLEAN,
        "OpenTelemetry tracing of requests and queries (needs the `tracing` extra).",
        False,
    )
    fast_check: bool = setting(
        "FAST_CHECK",
        BOOLEAN,
        "Serve the common `GET /v1/consent/check` from a small WSGI layer ahead of Flask (the"
        " same rules and answers; anything unusual still goes to Flask).",
        True,
    )
    database_read_url: str | None = setting(
        "DATABASE_READ_URL",
        OPTIONAL_TEXT,
        "A read replica for the check, the batch, the changes feed and exports.",
        None,
    )
    retention_interval: timedelta = setting(
        "RETENTION_INTERVAL_HOURS",
        HOURS,
        "How often `consent-center worker` runs retention.",
        timedelta(hours=24),
    )
    checkpoint_interval: timedelta = setting(
        "CHECKPOINT_INTERVAL_MINUTES",
        MINUTES,
        "How often the worker signs a checkpoint when events were written.",
        timedelta(minutes=5),
    )
    rights_report_interval: timedelta = setting(
        "RIGHTS_REPORT_INTERVAL_HOURS",
        HOURS,
        "How often the worker logs overdue rights requests.",
        timedelta(hours=24),
    )
    webhook_allow_private: bool = setting(
        "WEBHOOK_ALLOW_PRIVATE",
        BOOLEAN,
        "Deliver webhooks to loopback, private and link-local targets (and over plain http);"
        " for development and tests only.",
        False,
    )
    webhook_timeout: timedelta = setting(
        "WEBHOOK_TIMEOUT_SECONDS",
        SECONDS,
        "How long a webhook receiver may stay silent before the attempt counts as failed.",
        timedelta(seconds=10),
    )
    webhook_secret_overlap: timedelta = setting(
        "WEBHOOK_SECRET_OVERLAP_HOURS",
        HOURS,
        "After a secret rotation, how long the previous secret still signs (a second signature).",
        timedelta(hours=24),
    )
    webhook_lease: timedelta = setting(
        "WEBHOOK_LEASE_SECONDS",
        SECONDS,
        "How long a worker holds a receiver while sending to it; a killed worker's receiver is"
        " picked up by another after this.",
        timedelta(seconds=30),
    )
    twilio_auth_token: str | None = setting(
        "TWILIO_AUTH_TOKEN",
        OPTIONAL_TEXT,
        "Verifies X-Twilio-Signature on /inbound/twilio/sms; unset, that route refuses every call.",
        None,
    )
    sendgrid_webhook_public_key: str | None = setting(
        "SENDGRID_WEBHOOK_PUBLIC_KEY",
        OPTIONAL_TEXT,
        "SendGrid's Signed Event Webhook verification key (base64); unset,"
        " /inbound/sendgrid/events refuses every call.",
        None,
    )

    @property
    def timeouts(self) -> Timeouts:
        return Timeouts(
            self.db_lock_timeout, self.db_statement_timeout, self.db_idle_in_transaction_timeout
        )

    @property
    def brand(self) -> Brand:
        return Brand(
            name=self.brand_name,
            colour=self.brand_colour,
            logo_path=self.brand_logo_path,
            privacy_notice_url=self.privacy_notice_url,
            mail_sender_name=self.mail_sender_name,
        )

    @property
    def sender(self) -> str:
        """The From header of every mail: the brand's sender name on MAIL_FROM's address."""
        return self.brand.sender(self.mail_from)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def signing_key_path(self) -> Path:
        return self.audit_signing_key_path or self.instance_path / "audit-signing-key.json"

    @property
    def metrics_are_open(self) -> bool:
        return (not self.production) if self.metrics_open is None else self.metrics_open

    def with_overrides(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, *, defaults: Mapping[str, str] = {}
    ) -> Settings:
        """Settings from `environ` (the process environment when None); `defaults` stand in
        for variables it does not set (`consent-center run --port` gives PORT that way)."""
        env = dict(defaults) | dict(os.environ if environ is None else environ)
        values: dict[str, Any] = {}
        for spec in declared():
            raw = env.get(spec.metadata["env"])
            if raw is None or raw == "":
                continue
            try:
                values[spec.name] = spec.metadata["kind"].parse(raw)
            except ValueError as error:
                raise ConfigError(f"{spec.metadata['env']} {error}, not {raw!r}") from error
        instance = Path(values.get("instance_path", DEFAULT_INSTANCE)).resolve()
        values["instance_path"] = instance
        production = values.get("production", False)
        if "secret_key" not in values and not production:
            values["secret_key"] = _development_secret(instance)
        if "identifier_key" not in values and "secret_key" in values and not production:
            values["identifier_key"] = derive_key(values["secret_key"], "identifiers")
        if "database_url" in values:
            values["database_url"] = _database_url(values["database_url"])
        elif not production:
            instance.mkdir(parents=True, exist_ok=True)
            values["database_url"] = f"sqlite:///{instance / 'consent-center.db'}"
        if values.get("database_read_url"):
            values["database_read_url"] = _database_url(values["database_read_url"])
        values.setdefault("base_url", f"http://localhost:{values.get('port', 5000)}")
        values["base_url"] = values["base_url"].rstrip("/")
        values.setdefault("outbox_dir", instance / "outbox")
        if not production:
            values.setdefault("audit_signing_key_path", instance / "audit-signing-key.json")
        problems = production_problems(values) if production else []
        if problems:
            raise ConfigError(
                "PRODUCTION=true, but it cannot start:\n" + "\n".join(f"- {p}" for p in problems)
            )
        settings = cls(**values)
        check_opt_in_policy(settings)
        try:
            settings.brand  # noqa: B018 -- a brand that cannot be used stops the start, not a page
        except BrandError as error:
            raise ConfigError(str(error)) from error
        return settings


def check_opt_in_policy(settings: Settings) -> None:
    """Refuse single opt-in where the shipped policy requires double opt-in, unless overridden."""
    found = refusals(
        settings.single_opt_in_countries, settings.single_opt_in_override, load_policy()
    )
    if found:
        raise ConfigError(" ".join(found))


def declared() -> Iterator[Field[Any]]:
    """Every setting, in the order of the declaration."""
    return iter(fields(Settings))


def production_problems(values: Mapping[str, Any]) -> list[str]:
    """Everything a production start lacks, all at once, so one restart fixes them all."""
    problems = []
    if not values.get("secret_key"):
        problems.append("SECRET_KEY is not set (links and tokens would change on restart).")
    if not values.get("identifier_key"):
        problems.append(
            "IDENTIFIER_HMAC_KEY is not set (subjects and suppressions are found by it)."
        )
    url = str(values.get("database_url") or "")
    if not url.startswith("postgresql"):
        problems.append(
            "DATABASE_URL is not a PostgreSQL URL"
            + (f" (it is {url.split(':', 1)[0]}:…)." if url else " (it is unset).")
        )
    path = values.get("audit_signing_key_path")
    if path is None:
        problems.append("AUDIT_SIGNING_KEY_PATH is not set (the key that signs checkpoints).")
    elif not Path(path).is_file():
        problems.append(
            f"AUDIT_SIGNING_KEY_PATH {path} does not exist; make it once with "
            "`consent-center audit new-key PATH` on persistent storage."
        )
    elif Path(path).resolve().is_relative_to(Path(values["instance_path"]).resolve()):
        problems.append(
            f"AUDIT_SIGNING_KEY_PATH {path} lies inside INSTANCE_PATH; keep it on its own"
            " persistent volume or secret mount."
        )
    return problems


def reference() -> str:
    """docs/configuration.md: the reference generated from the declaration above."""
    lines = [
        "# Configuration reference",
        "",
        "Generated from the declaration in `app/config.py` by",
        "`consent-center config-reference > docs/configuration.md`; a test fails when it is out",
        "of date. Every setting comes from the environment; nothing else reads it.",
        "",
        "| variable | type | default | meaning |",
        "| --- | --- | --- | --- |",
    ]
    for spec in declared():
        kind: Kind = spec.metadata["kind"]
        shown = spec.metadata["fallback"]
        if not shown and isinstance(spec.default, Path):
            shown = f"the shipped app/data/{spec.default.name}"
            if spec.default.is_relative_to(DEFAULT_INSTANCE):
                shown = "instance/ in the working directory"
        elif not shown and spec.default is not MISSING and kind.show(spec.default):
            shown = f"`{kind.show(spec.default)}`"
        lines.append(
            f"| `{spec.metadata['env']}` | {kind.name} | {shown or '(none)'}"
            f" | {spec.metadata['meaning']} |"
        )
    return "\n".join(lines) + "\n"


def derive_key(secret: str, purpose: str) -> bytes:
    """A key for one purpose, derived from SECRET_KEY so that one secret configures all."""
    return hmac.new(secret.encode(), f"consent-center:{purpose}".encode(), hashlib.sha256).digest()


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


def _database_url(value: str) -> str:
    if value.startswith("postgres://"):
        value = "postgresql+psycopg://" + value.removeprefix("postgres://")
    elif value.startswith("postgresql://"):
        value = "postgresql+psycopg://" + value.removeprefix("postgresql://")
    return value
