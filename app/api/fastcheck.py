"""The common consent check, served by a small WSGI layer ahead of Flask.

Marketing tools call `GET /v1/consent/check` before every send, so most of its time went on
machinery around one indexed read: Flask's dispatch, the cookie session, the limiter's hooks, a
pooled connection checked out and pre-pinged per request. `FastCheck` answers the common case
itself, calling the same functions as the Flask view, in the same order where it matters:

- auth: the token must already be in the verified-token cache with the scope, and its client
  active (`VerifiedTokens.get`, `ActiveClients.contains`: what `app.auth.require` checks first);
- the arguments: the view's own schema (`CheckQuerySchema`), `subject_of`, `question_of` and
  `checks.validate`;
- the per-client /v1 limit: `app.limits.count_api_hit`, Flask-Limiter's storage, keys and headers;
- the answer: `checks.check` (normalisation, suppression, the decision), `count_decisions`,
  `answer_body`, the app's JSON provider; request id, the request-duration metric, security and
  `Cache-Control` headers as `app.observability` and `app.security` write them.

The read runs on a connection this worker thread keeps (no pool checkout, no pre-ping; one
retry on a fresh connection when the database dropped it). Anything unusual goes to Flask
untouched, so every error keeps its problem+json shape: another method or path, a repeated,
unknown, empty or NUL-holding parameter, a token not cached or lacking the scope, invalid
arguments, an exceeded limit or a failing limit store, a failing read, debug mode.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import unquote

from marshmallow import RAISE, Schema, ValidationError, missing
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from app.api import consent
from app.api.schemas import CheckQuerySchema
from app.database import DIRECT, Direct, make_unpooled_engine
from app.domain.errors import DomainError
from app.domain.vocabulary import Scope
from app.limits import can_count_lean, count_api_hit
from app.observability import REQUEST_ID, count_decisions, request_seconds, sane_request_id
from app.security import ALWAYS, HSTS
from app.services.consent import checks

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment
    from flask import Flask

    from app.config import Settings

PATH = "/v1/consent/check"
ROUTE = "/v1/consent/check"  # the route template the metric names, as Flask's url_rule does
T = TypeVar("T")
_schema = CheckQuerySchema()
KNOWN = frozenset(_schema.fields)


class Reader:
    """One connection per thread of this worker, kept between requests: no pool checkout and
    no pre-ping per read, its prepared reads sent straight to the driver (`database.Direct`).
    A connection the database dropped is replaced once, and the read run again (it only
    reads)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._local = threading.local()

    def read(self, use: Callable[[Session], T]) -> T:
        for attempt in (1, 2):
            connection: Connection | None = getattr(self._local, "connection", None)
            if connection is None or connection.closed or connection.invalidated:
                connection = self._local.connection = self._connect()
                # Kept too: a read that only sent prepared statements left it untouched.
                self._local.session = Session(bind=connection, info={DIRECT: Direct(connection)})
            session: Session = self._local.session
            try:
                return use(session)
            except DBAPIError as error:
                self._local.connection = None
                connection.close()
                if attempt == 2 or not error.connection_invalidated:
                    raise
            finally:
                if session.in_transaction() or session.identity_map:
                    session.close()  # the ORM was used: begin the next read afresh
        raise AssertionError("unreachable")  # pragma: no cover

    def _connect(self) -> Connection:
        # One statement is consistent on its own: no BEGIN and ROLLBACK (on SQLite 100 µs).
        return self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")


class FastCheck:
    """WSGI middleware: serves the common check, hands everything else to `flask_app`."""

    def __init__(self, app: Flask, flask_app: WSGIApplication) -> None:
        self.app = app
        self.flask_app = flask_app
        settings: Settings = app.extensions["settings"]
        self.settings = settings
        self.enabled = settings.fast_check and not settings.tracing
        self.is_https_site = settings.base_url.startswith("https://")
        replica = settings.database_read_url
        self.source = {"read_from": "replica"} if replica else {}
        self._reader: Reader | None = None

    @property
    def reader(self) -> Reader:
        if self._reader is None:  # made in the worker, after gunicorn forked
            url = self.settings.database_read_url or self.settings.database_url
            self._reader = Reader(make_unpooled_engine(url, timeouts=self.settings.timeouts))
        return self._reader

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if self.enabled and environ.get("PATH_INFO") == PATH:
            answer = self.serve(environ)
            if answer is not None:
                status, headers, body = answer
                start_response(status, headers)
                return [body]
        return self.flask_app(environ, start_response)

    def serve(self, environ: WSGIEnvironment) -> tuple[str, list[tuple[str, str]], bytes] | None:
        """The answer to a common check, or None: Flask answers it."""
        started = time.perf_counter()
        if environ.get("REQUEST_METHOD") != "GET" or self.app.debug:
            return None
        extensions = self.app.extensions
        header = environ.get("HTTP_AUTHORIZATION", "")
        token = extensions["verified_tokens"].get(header, Scope.CONSENT_READ) if header else None
        if token is None:
            return None
        client_id = str(token.get("client_id"))
        if not extensions["active_clients"].contains(client_id):
            return None
        given = _arguments(environ.get("QUERY_STRING", ""))
        if given is None:
            return None
        rules = extensions["rules"]
        try:
            args = load(given)
            ident, subject_id = consent.subject_of(args)
            question = consent.question_of(args)
            checks.validate(rules, question)
        except (ValidationError, DomainError):
            return None
        limit_headers: list[tuple[str, str]] = []
        if self.settings.ratelimit_enabled:
            if not can_count_lean():
                return None
            counted = count_api_hit(self.settings.api_rate_limit, client_id)
            if counted is None:
                return None
            limit_headers = counted
        try:
            answer = self.reader.read(
                lambda session: checks.check(
                    session, rules, question, ident=ident, subject_id=subject_id
                )
            )
        except Exception:  # Flask's path answers (503 for an outage) and logs it
            return None
        count_decisions(answer.decision.reason)
        body = consent.answer_body(answer, self.source)
        data = f"{self.app.json.dumps(body, separators=(',', ':'))}\n".encode()
        headers = [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(data))),
            *ALWAYS.items(),
        ]
        if self.is_https_site or environ.get("wsgi.url_scheme") == "https":
            headers.append(("Strict-Transport-Security", HSTS))
        headers.append(("Cache-Control", "no-store"))
        headers.extend(limit_headers)
        headers.append((REQUEST_ID, sane_request_id(environ.get("HTTP_X_REQUEST_ID", ""))))
        request_seconds(ROUTE, "GET", "200").observe(time.perf_counter() - started)
        return "200 OK", headers, data


def _is_plain(schema: Schema) -> bool:
    """Whether `schema.load` of known fields is each given field's own `deserialize` and then
    the schema's validators: no pre- or post-load hooks, no field validators, and no field
    that is required, has a default or loads under another name."""
    hooks = {tag for tag, found in schema._hooks.items() if found}
    return hooks <= {"validates_schema"} and not any(
        field.required
        or field.load_default is not missing
        or field.data_key is not None
        or field.attribute is not None
        for field in schema.fields.values()
    )


def load(given: dict[str, str]) -> dict[str, Any]:
    """`CheckQuerySchema().load(given)` for known parameters: the schema's own fields and its
    validators, without the load's machinery for the fields not given (a third of the cost
    of the arguments). Raises ValidationError as the load does."""
    if not _PLAIN:
        return _schema.load(given)  # type: ignore[no-any-return]
    fields = _schema.fields
    data = {name: fields[name].deserialize(value, name, given) for name, value in given.items()}
    for name, _many, options in _schema._hooks["validates_schema"]:
        validate = getattr(_schema, name)  # called as marshmallow's Schema._run_validator does
        original = (given,) if options.get("pass_original") else ()
        validate(data, *original, partial=None, many=False, unknown=RAISE)
    return data


_PLAIN = _is_plain(_schema)


def _arguments(query: str) -> dict[str, str] | None:
    """The query's parameters when each is known, given once, non-empty, and free of NUL
    characters and of bytes that are not UTF-8; else None. Read as `parse_qsl` reads it
    (pairs split on `&`, empty pairs skipped, `+` a space, percent-escapes decoded strictly),
    without its generality: tests/api/test_check_answer.py holds the two alike."""
    args: dict[str, str] = {}
    try:
        # WSGI passes the query as latin-1; Flask reads it as UTF-8 (werkzeug's request.args).
        for pair in query.encode("latin-1").decode().split("&"):
            if not pair:
                continue
            name, _, value = pair.partition("=")
            name, value = _unquoted(name), _unquoted(value)
            if not value or "\x00" in value or name in args or name not in KNOWN:
                return None
            args[name] = value
    except UnicodeError:
        return None
    return args


def _unquoted(text: str) -> str:
    if "+" in text or "%" in text:
        return unquote(text.replace("+", " "), errors="strict")
    return text


def install(app: Flask) -> None:
    """Put the fast check ahead of the app's WSGI callable (inside ProxyFix, when there is one)."""
    app.wsgi_app = FastCheck(app, app.wsgi_app)  # type: ignore[method-assign]
