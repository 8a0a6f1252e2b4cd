"""consent-center: create_app() alone wires configuration, extensions and blueprints."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from flask import Flask, Request, g, request
from flask.json.provider import DefaultJSONProvider
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from werkzeug.middleware.proxy_fix import ProxyFix

from app import components
from app.config import Settings
from app.domain.catalog import LANGUAGES, LOCALES, Catalog
from app.domain.chain import format_time

PACKAGE = Path(__file__).parent


def _asset_folder(name: str) -> str:
    """Top-level templates/ and static/ in a checkout; inside the package once installed."""
    installed = PACKAGE / name
    return str(installed if installed.is_dir() else PACKAGE.parent / name)


def translation_directories() -> str:
    """Each page area keeps its own catalog (app/translations/AREA/LOCALE/LC_MESSAGES)."""
    root = PACKAGE / "translations"
    areas = sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    return ";".join(str(p) for p in areas) or str(root)


class SessionInterface(SecureCookieSessionInterface):
    """The signed cookie session for pages; none on /v1, whose bearer-token API never reads one
    (no signer built and no cookie parsed per API request)."""

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if request.path.startswith("/v1/"):
            return self.make_null_session(app)
        return super().open_session(app, request)


class JSONProvider(DefaultJSONProvider):
    """Datetimes as RFC 3339 in UTC (Flask's default is an HTTP date)."""

    @staticmethod
    def default(o: object) -> object:
        if isinstance(o, datetime):
            return format_time(o)
        return DefaultJSONProvider.default(o)


def create_app(settings: Settings | None = None, catalog: Catalog | None = None) -> Flask:
    settings = settings or Settings.from_env()
    parts = components.build(settings, catalog)
    app = Flask(
        __name__,
        template_folder=_asset_folder("templates"),
        static_folder=_asset_folder("static"),
        instance_path=str(settings.instance_path),
    )
    app.json = JSONProvider(app)
    app.session_interface = SessionInterface()
    app.config.update(
        SECRET_KEY=settings.secret_key,
        SQLALCHEMY_DATABASE_URI=settings.database_url,
        MAX_CONTENT_LENGTH=settings.max_content_length,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.base_url.startswith("https://"),
        BABEL_DEFAULT_LOCALE="en",
        BABEL_TRANSLATION_DIRECTORIES=translation_directories(),
    )
    from app.database import configure_engine, engine_options
    from app.errors import register_error_handlers
    from app.extensions import babel, csrf, db

    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = engine_options(
        settings.database_url, settings.timeouts
    )
    db.init_app(app)
    with app.app_context():
        configure_engine(db.engine, settings.timeouts)
    if settings.database_read_url:
        from app.database import make_replica_engine

        app.extensions["replica_engine"] = make_replica_engine(
            settings.database_read_url, timeouts=settings.timeouts
        )
    app.extensions["settings"] = settings
    from app.api.fastcheck import install

    install(app)  # ahead of Flask, inside ProxyFix: the common consent check (app/api/fastcheck.py)
    if settings.trusted_proxy_hops:
        # The client's address is the one the trusted proxies saw: evidence and per-IP limits
        # both read request.remote_addr, and a client-sent extra X-Forwarded-For hop is ignored.
        hops = settings.trusted_proxy_hops
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)  # type: ignore[method-assign]
    from app.observability import init_observability

    init_observability(app, settings)
    babel.init_app(app, locale_selector=select_locale, timezone_selector=select_timezone)
    csrf.init_app(app)  # every HTML form; the JSON API and RFC 8058 one-click POSTs are exempt

    app.extensions["settings"] = settings
    app.extensions["catalog"] = parts.catalog
    app.extensions["rules"] = parts.rules
    app.extensions["signing_keys"] = parts.signing_keys
    app.extensions["access_token_key"] = parts.access_token_key

    from app.services.delivery.mail import MailTemplates
    from app.services.tokens import Purpose, Tokens

    app.extensions["tokens"] = Tokens(
        settings.secret_key,
        {
            Purpose.CONFIRM: settings.confirm_link_ttl,
            Purpose.PREFERENCES: settings.preference_link_ttl,
            Purpose.UNSUBSCRIBE: settings.unsubscribe_link_ttl,
            Purpose.ACCESS: settings.access_link_ttl,
            Purpose.DPO: settings.access_session_idle,
        },
    )
    app.extensions["mail_templates"] = MailTemplates(Path(_asset_folder("templates")) / "mail")

    from app.auth import init_auth

    init_auth(app, settings, parts.access_token_key)

    from app.api import (
        audit,
        consent,
        identifiers,
        imports,
        meta,
        oauth,
        rights,
        subjects,
        subscriptions,
    )
    from app.web import brand, docs, dpo, health, jwks, privacy, signup

    for module in (consent, subjects, subscriptions, audit, meta, rights, identifiers, imports):
        csrf.exempt(module.bp)  # bearer-token API: no cookies, so no CSRF
        app.register_blueprint(module.bp, url_prefix="/v1")
    from app.api import changes, message_links, providers

    for module in (changes, providers):
        csrf.exempt(module.bp)  # bearer tokens, or the provider's own signature: no cookies
    app.register_blueprint(changes.bp, url_prefix="/v1")
    app.register_blueprint(providers.bp)
    from app.web import preferences as preference_pages

    csrf.exempt(message_links.bp)
    app.register_blueprint(message_links.bp, url_prefix="/v1")
    app.register_blueprint(preference_pages.bp)
    csrf.exempt(oauth.bp)
    for blueprint in (
        oauth.bp,
        health.bp,
        jwks.bp,
        docs.bp,
        brand.bp,
        signup.bp,
        privacy.bp,
        dpo.bp,
    ):
        app.register_blueprint(blueprint)

    from app.limits import init_rate_limits
    from app.security import init_security

    init_rate_limits(app, settings)  # after the blueprints: it limits every one serving /v1
    init_security(app, settings)
    register_error_handlers(app)
    if settings.send_mail_inline:
        from app.worker import start_inline

        with app.app_context():
            app.extensions["inline_mail_stop"] = start_inline(
                db.engine, settings, rules=app.extensions["rules"]
            )

    from flask_babel import get_locale

    app.jinja_env.globals["current_locale"] = lambda: str(get_locale() or "en")
    app.jinja_env.globals["languages"] = LANGUAGES
    return app


def select_timezone() -> str | None:
    """A page that knows the person's zone sets g.timezone; every other time is UTC."""
    zone = g.get("timezone")
    return str(zone) if zone else None


def select_locale() -> str | None:
    """?lang=, then the lang cookie, then the subject's stored locale, then Accept-Language."""
    for candidate in (request.args.get("lang"), request.cookies.get("lang"), g.get("locale")):
        if candidate in LOCALES:
            return candidate
    return request.accept_languages.best_match(LOCALES) or "en"
