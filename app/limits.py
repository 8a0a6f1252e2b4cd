"""Rate limits: per API client on /v1, per IP on the token endpoint and on public pages.

Page blueprints decorate their views with the shared limits defined here:

    from app.limits import public_form_limit, public_page_limit

    @bp.route("/subscribe", methods=["GET", "POST"])
    @public_form_limit          # counts POSTs only, per IP, shared by every public form
    def subscribe(): ...

Limits are read from Settings on each request (the limiter is one object shared by every app
that create_app() builds), and stored in memory, or in Redis when RATELIMIT_STORAGE_URL says so.
"""

from __future__ import annotations

import time
from typing import Any, cast

from flask import Blueprint, Flask, Response, current_app, request
from flask_limiter.util import get_remote_address
from joserfc import jwt
from limits import parse_many
from limits.storage import MemoryStorage

from app.config import ConfigError, Settings
from app.extensions import limiter

# The draft IETF names (draft-ietf-httpapi-ratelimit-headers): RateLimit-Reset in seconds.
LIMIT_HEADER, REMAINING_HEADER, RESET_HEADER = (
    "RateLimit-Limit",
    "RateLimit-Remaining",
    "RateLimit-Reset",
)


class SweptMemoryStorage(MemoryStorage):
    """limits' in-memory storage without its timer thread.

    MemoryStorage starts a threading.Timer whenever the last one has run out, so under load a
    new thread every 10 ms, each start a blocking hand-off (13 % of a check's time in a profile).
    Expiry is already checked on every read; the timer only sweeps keys nobody reads again, and
    this sweeps them inline instead, at most once a second, keeping memory bounded.
    """

    STORAGE_SCHEME = ["swept-memory"]  # noqa: RUF012 - limits registers storages by this name
    SWEEP_EVERY = 1.0

    def __init__(self, uri: str | None = None, wrap_exceptions: bool = False, **options: Any):
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)
        self.timer.cancel()
        self.swept_at = time.monotonic()

    def _MemoryStorage__schedule_expiry(self) -> None:  # noqa: N802 - overrides the private hook
        now = time.monotonic()
        if now - self.swept_at >= self.SWEEP_EVERY:
            self.swept_at = now
            self._MemoryStorage__expire_events()  # type: ignore[attr-defined]


def storage_uri(configured: str) -> str:
    """memory:// means the swept in-memory storage; any other URI (redis://…) is used as given."""
    return "swept-memory://" if configured.startswith("memory://") else configured


def _settings() -> Settings:
    return current_app.extensions["settings"]  # type: ignore[no-any-return]


def api_rate() -> str:
    return _settings().api_rate_limit


def token_rate() -> str:
    return _settings().token_rate_limit


def public_form_rate() -> str:
    return _settings().public_form_rate


def public_page_rate() -> str:
    return _settings().public_page_rate_limit


def client_key() -> str:
    """The API client a bearer token was issued to; the caller's IP without a genuine token.

    The signature is checked (not the expiry) so that nobody can spend another client's budget
    by sending forged tokens in its name.
    """
    header = request.headers.get("Authorization", "")
    cached = current_app.extensions["verified_tokens"].client_of(header) if header else None
    if cached is not None:  # verified by an earlier request: no second decode of the JWT
        return f"client:{cached}"
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token:
        try:
            claims = jwt.decode(token.strip(), current_app.extensions["access_token_key"]).claims
        except Exception:  # a key function must never fail a request: any bad token is "no client"
            claims = {}
        client_id = claims.get("client_id")
        if isinstance(client_id, str) and client_id:
            return f"client:{client_id}"
    return f"ip:{get_remote_address()}"


def ip_key() -> str:
    return f"ip:{get_remote_address()}"


def _too_many() -> str:
    return "Too many requests; wait for the time given in Retry-After and try again."


api_limit = limiter.shared_limit(
    api_rate, scope="api", key_func=client_key, error_message=_too_many
)
token_limit = limiter.shared_limit(
    token_rate, scope="token", key_func=ip_key, error_message=_too_many
)
public_form_limit = limiter.shared_limit(
    public_form_rate,
    scope="public-form",
    key_func=ip_key,
    methods=["POST"],
    error_message=_too_many,
)
public_page_limit = limiter.shared_limit(
    public_page_rate, scope="public-page", key_func=ip_key, error_message=_too_many
)


def init_rate_limits(app: Flask, settings: Settings) -> None:
    """Configure Flask-Limiter for `app`, put the per-client limit on every blueprint serving
    /v1 and the per-IP limit on the token endpoint. Call it once the blueprints are registered."""
    for name, value in (
        ("API_RATE_LIMIT", settings.api_rate_limit),
        ("TOKEN_RATE_LIMIT", settings.token_rate_limit),
        ("PUBLIC_FORM_RATE", settings.public_form_rate),
        ("PUBLIC_PAGE_RATE_LIMIT", settings.public_page_rate_limit),
    ):
        try:
            parse_many(value)
        except ValueError as error:
            raise ConfigError(f"{name} is not a rate limit: {value!r}") from error
    storage_options: dict[str, Any] = {}
    if settings.ratelimit_storage_url.startswith(("redis", "valkey")):
        storage_options["key_prefix"] = settings.ratelimit_key_prefix
    app.config.update(
        RATELIMIT_STORAGE_URI=storage_uri(settings.ratelimit_storage_url),
        RATELIMIT_STORAGE_OPTIONS=storage_options,
        RATELIMIT_ENABLED=settings.ratelimit_enabled,
        RATELIMIT_HEADERS_ENABLED=True,
        RATELIMIT_HEADER_LIMIT=LIMIT_HEADER,
        RATELIMIT_HEADER_REMAINING=REMAINING_HEADER,
        RATELIMIT_HEADER_RESET=RESET_HEADER,
        # Redis down must not stop a withdrawal: count in memory until it is back.
        RATELIMIT_IN_MEMORY_FALLBACK_ENABLED=True,
        RATELIMIT_SWALLOW_ERRORS=True,
    )
    # Registered before the limiter's own hook, so this one runs after it (Flask reverses them).
    app.after_request(_standard_headers)
    limiter.init_app(app)
    for blueprint in _blueprints_under(app, "/v1/"):
        api_limit(blueprint)  # the same Limit each time: Flask-Limiter keeps one per blueprint
    for blueprint in _blueprints_under(app, "/oauth/"):
        token_limit(blueprint)


def _blueprints_under(app: Flask, prefix: str) -> list[Blueprint]:
    names = {
        rule.endpoint.rpartition(".")[0]
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith(prefix)
    }
    found = [app.blueprints[name] for name in sorted(names) if name in app.blueprints]
    return cast(list[Blueprint], found)


def _standard_headers(response: Response) -> Response:
    """RateLimit-Reset as seconds from now (Flask-Limiter writes a timestamp); Retry-After only
    where it means something (429, 503)."""
    reset = response.headers.get(RESET_HEADER)
    if reset is not None and reset.isdigit():
        response.headers[RESET_HEADER] = str(max(0, int(reset) - int(time.time())))
    if response.status_code not in (429, 503):
        response.headers.pop("Retry-After", None)
    return response
