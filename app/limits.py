"""Rate limits: per API client on /v1, per IP on the token endpoint and the mail-sending
forms, per target mailbox on those forms, per link (token) on the pages emailed links open.

Page blueprints decorate their views with the shared limits defined here:

    from app.limits import link_limit, mailbox_limit, public_form_limit

    @bp.post("/subscribe")
    @public_form_limit   # per IP: one budget shared by every public form that sends mail
    @mailbox_limit       # per target mailbox: a.b+x@… and ab@… count as one
    def subscribe(): ...

    @bp.get("/p/<token>")
    @link_limit          # per token, not per IP: people behind one office or carrier NAT
    def page(token): ...

Limits are read from Settings on each request (the limiter is one object shared by every app
that create_app() builds) and counted in the database by default (`DatabaseStorage`), so every
worker and instance shares them; Redis when RATELIMIT_STORAGE_URL says so; memory:// counts in
one process only, which the start-up log says.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import os
import threading
import time
from collections.abc import Sequence
from datetime import timedelta
from typing import Any, Protocol, cast

from flask import Blueprint, Flask, Response, current_app, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from joserfc import jwt
from limits import RateLimitItem, parse_many
from limits.storage import MemoryStorage, RedisStorage, Storage
from limits.strategies import FixedWindowRateLimiter
from sqlalchemy import (
    ClauseElement,
    Engine,
    Float,
    Integer,
    Table,
    bindparam,
    case,
    delete,
    event,
    make_url,
    select,
)
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.schema import CreateTable
from sqlalchemy.sql.compiler import SQLCompiler

from app.config import ConfigError, Settings
from app.database import Timeouts, make_engine, make_unpooled_engine, upsert_insert
from app.domain.errors import InvalidIdentifierError
from app.domain.identifiers import mailbox, normalize_email
from app.extensions import limiter
from app.models import RateLimitCounter

log = logging.getLogger(__name__)

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


class _Remembered:
    """What this thread last learnt of one key (a hit's count, a window's end), taken once
    and only within `within` seconds: the question Flask-Limiter asks right after a hit or
    a read is then answered without another trip to the storage."""

    def __init__(self, within: float) -> None:
        self.within = within
        self._local = threading.local()

    def keep(self, key: str, *values: Any) -> None:
        self._local.value = (key, time.monotonic(), values)

    def take(self, key: str) -> tuple[Any, ...] | None:
        kept, self._local.value = getattr(self._local, "value", None), None
        if kept is None or kept[0] != key or time.monotonic() - kept[1] >= self.within:
            return None
        return kept[2]  # type: ignore[no-any-return]


class HitLeases:
    """Hits of a shared fixed-window counter taken `size` at a time, for the limits of 1,000
    or more a window (the per-client /v1 budget by default), on Flask's path
    (`LeasedFixedWindowRateLimiter`) and the fast check's (`count_api_hit`) alike. One trip
    to the store adds `size` to the window's count and gives this process the hits numbered
    `count - size + 1` … `count` in that window, which it hands out one per request until
    they are spent or the window ends.

    Every number is handed out once, whichever process holds it, so a limit of N still
    admits at most N requests a window. What a process holds unused when the window ends
    (at most `size - 1`; and a thread's, when another thread of the process leased at the
    same moment and replaced it) is counted as spent: a client may be refused that many hits
    early. `lease_size` keeps that near 0.2 % of the limit a process, and at 1 (one trip a
    hit, exact) for limits under 1,000 a window. RateLimit-Remaining is the limit less the
    request's number: other processes' unused hits count as spent there too.

    On SQLite each hit's upsert of a counter every worker writes cost a worker 200 µs of
    CPU (a third of a check); on PostgreSQL 200 µs and 120 µs of the server's."""

    KEEP = 1024  # keys held at most before the lapsed ones are dropped

    def __init__(self, store: _Counting) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._held: dict[str, list[Any]] = {}  # key: [next number, last number, window end]
        self._pid = os.getpid()

    def hit(self, key: str, expiry: int, size: int) -> tuple[int, float]:
        """This hit's number in the window of `key` (what a count of each hit alone would
        have answered, or more) and the window's end. A lease of 1 is the hit counted alone."""
        if size == 1:
            return self.store.counted(key, expiry, 1)
        now = time.time()
        with self._lock:
            if self._pid != os.getpid():  # a fork's copy: the parent's hits are not ours
                self._held, self._pid = {}, os.getpid()
            held = self._held.get(key)
            if held is not None and held[0] <= held[1] and now < held[2]:
                held[0] += 1
                return held[0] - 1, held[2]
        count, ends = self.store.counted(key, expiry, size)  # outside the lock: a round trip
        with self._lock:
            if len(self._held) >= self.KEEP:
                self._held = {k: v for k, v in self._held.items() if v[2] > now}
            self._held[key] = [count - size + 2, count, ends]
        return count - size + 1, ends


class _Counting(Protocol):
    def counted(self, key: str, expiry: int, amount: int = 1) -> tuple[int, float]:
        """Add `amount` to the window's count of `key`: the count and the window's end."""


LEASE_MAX, LEASE_SHARE = 16, 500


def lease_size(amount: int) -> int:
    """Hits a process takes at once for a limit of `amount` a window: 1/500 of it, at most
    16 and at least 1."""
    return max(1, min(LEASE_MAX, amount // LEASE_SHARE))


class LeasedFixedWindowRateLimiter(FixedWindowRateLimiter):
    """limits' fixed window, whose hits on a limit of 1,000 or more a window are taken from
    the database or Redis a lease at a time (`HitLeases`, `lease_size`): Flask-Limiter's
    strategy on every route, as `count_api_hit` counts on the fast check's. The hit's own
    number answers the headers' question right after it (`get`, as a counted hit does)."""

    def hit(self, item: RateLimitItem, *identifiers: str, cost: int = 1) -> bool:
        storage = self.storage
        if cost != 1 or not isinstance(storage, (DatabaseStorage, CountingRedisStorage)):
            return super().hit(item, *identifiers, cost=cost)
        key = item.key_for(*identifiers)
        number, ends = storage.leases.hit(key, item.get_expiry(), lease_size(item.amount))
        storage.remember_hit(key, number, ends)
        return number <= item.amount


class DatabaseStorage(Storage):
    """Fixed-window counters in this service's own database (table rate_limit_counters): one
    atomic upsert per hit (per lease of hits for a large limit, `HitLeases`), so every worker
    and instance counts together with no Redis."""

    # limits registers storages by scheme: database+<the SQLAlchemy URL of this service's database>
    STORAGE_SCHEME = [  # noqa: RUF012
        "database+sqlite",
        "database+postgresql",
        "database+postgresql+psycopg",
    ]
    PURGE_EVERY = 1000
    READ_FOR = 1.0  # seconds a window read by `get` answers `get_expiry` of its key
    HIT_FOR = 0.25  # seconds a hit answers `get` of its key: the same request's headers

    def __init__(
        self, uri: str | None = None, wrap_exceptions: bool = False, **options: Any
    ) -> None:
        super().__init__(uri, wrap_exceptions=wrap_exceptions)
        # A short lock wait: a busy database makes the limiter count in memory for a moment
        # (RATELIMIT_IN_MEMORY_FALLBACK), never slows the request it guards.
        url = str(uri).removeprefix("database+")
        timeouts = Timeouts(lock=timedelta(milliseconds=500))
        self.engine = make_engine(url, timeouts=timeouts)
        # The connections each thread keeps for the hits come from no pool: however many
        # threads a worker runs, they never take the pool's connections from the rest.
        kept_engine = make_unpooled_engine(url, timeouts=timeouts)
        if self.engine.dialect.name == "postgresql":
            for engine in (self.engine, kept_engine):
                event.listen(engine, "connect", _no_commit_flush)
        if str(self.engine.url.database).endswith(COUNTERS_FILE_SUFFIX):
            with self.engine.begin() as connection:  # the SQLite counters' own file
                connection.execute(CreateTable(_COUNTERS, if_not_exists=True))
        self.kept = _KeptConnection(kept_engine)
        self._counted = self.kept.compile(_counted_statement(self.engine.dialect.name))
        self._read = self.kept.compile(
            select(_COUNTERS.c.count, _COUNTERS.c.expires_at).where(
                _COUNTERS.c.key == bindparam("key")
            )
        )
        self.hits = 0
        # The rate-limit headers ask `get` and `get_expiry` right after the request's hit:
        # the hit's count and window end answer `get`, and `get`'s window end `get_expiry`.
        self.last_hit, self.last_read = _Remembered(self.HIT_FOR), _Remembered(self.READ_FOR)
        self.leases = HitLeases(self)

    @property
    def base_exceptions(self) -> type[Exception] | tuple[type[Exception], ...]:
        return (SQLAlchemyError, self.engine.dialect.loaded_dbapi.Error)

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        return self.counted(key, expiry, amount)[0]

    def counted(self, key: str, expiry: int, amount: int = 1) -> tuple[int, float]:
        """`incr`, and the window's end: what a fixed window's count and headers need, in one
        statement (Flask-Limiter reads them back with two more).

        Every /v1 request counts here, so it runs on a connection this thread keeps, as SQL
        compiled once: no pool checkout, no explicit BEGIN, no statement built per hit (an
        upsert through `engine.begin()` cost 400 µs; this 25 µs on SQLite). A connection
        that fails is dropped and the error raised; the next hit takes a fresh one."""
        now = time.time()
        params = {"key": key, "amount": amount, "now": now, "ends": now + expiry}
        count, expires_at = self.kept.fetch_one(self._counted, params)
        self.last_hit.keep(key, count, expires_at)
        self.hits += 1
        if self.hits % self.PURGE_EVERY == 0:
            with self.engine.begin() as connection:
                connection.execute(delete(_COUNTERS).where(_COUNTERS.c.expires_at < now - 60))
        return int(count), float(expires_at)

    def remember_hit(self, key: str, count: int, ends: float) -> None:
        """What `get` answers of `key` right after this thread's hit (a leased hit's number)."""
        self.last_hit.keep(key, count, ends)

    def get(self, key: str) -> int:
        """The window's count: as this thread's hit on `key` just left it (the headers of
        every /v1 answer, as the fast check's), else read."""
        now = time.time()
        row = self.last_hit.take(key) or self.kept.fetch_one(self._read, {"key": key})
        count, expires_at = row if row is not None else (0, None)
        self.last_read.keep(key, expires_at)
        return int(count) if expires_at is not None and expires_at > now else 0

    def get_expiry(self, key: str) -> float:
        last = self.last_read.take(key)
        if last is not None:
            (expires_at,) = last
        else:
            with self.engine.begin() as connection:
                expires_at = connection.scalar(
                    select(_COUNTERS.c.expires_at).where(_COUNTERS.c.key == key)
                )
        return float(expires_at) if expires_at is not None else time.time()

    def check(self) -> bool:
        try:
            with self.engine.begin() as connection:
                connection.execute(select(1))
        except SQLAlchemyError:
            return False
        return True

    def reset(self) -> int | None:
        with self.engine.begin() as connection:
            return int(cast(Any, connection.execute(delete(_COUNTERS))).rowcount)

    def clear(self, key: str) -> None:
        with self.engine.begin() as connection:
            connection.execute(delete(_COUNTERS).where(_COUNTERS.c.key == key))


_COUNTERS = cast(Table, RateLimitCounter.__table__)


def _counted_statement(dialect: str) -> ClauseElement:
    """One hit: the window's count and end, a new window once the last one is over."""
    table = _COUNTERS
    now = bindparam("now", type_=Float())
    amount = bindparam("amount", type_=Integer())
    ends = bindparam("ends", type_=Float())
    is_over = table.c.expires_at <= now
    statement: ClauseElement = (
        upsert_insert(dialect)(table)
        .values(key=bindparam("key"), count=amount, expires_at=ends)
        .on_conflict_do_update(
            index_elements=[table.c.key],
            set_={
                "count": case((is_over, amount), else_=table.c.count + amount),
                "expires_at": case((is_over, ends), else_=table.c.expires_at),
            },
        )
        .returning(table.c.count, table.c.expires_at)
    )
    return statement


class _KeptConnection:
    """Statements compiled once, run in autocommit on a DBAPI connection each thread keeps
    (and never a parent's, after a fork). A connection that fails is dropped and the error
    raised; the next statement takes a fresh one."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._local = threading.local()

    def compile(self, statement: ClauseElement) -> tuple[str, Sequence[str] | None]:
        """The statement's SQL and, where the driver takes positions, its parameters' order."""
        compiled = cast(SQLCompiler, statement.compile(dialect=self.engine.dialect))
        return compiled.string, compiled.positiontup

    def fetch_one(self, compiled: tuple[str, Sequence[str] | None], params: dict[str, Any]) -> Any:
        sql, order = compiled
        connection = getattr(self._local, "connection", None)
        if connection is None or self._local.pid != os.getpid():
            connection = self.engine.raw_connection()
            if self.engine.dialect.name == "postgresql":
                connection.driver_connection.autocommit = True  # type: ignore[union-attr]
            self._local.connection, self._local.pid = connection, os.getpid()
        given = params if order is None else tuple(params[name] for name in order)
        try:
            cursor = connection.cursor()
            cursor.execute(sql, given)
            row = cursor.fetchone()
            cursor.close()
        except Exception:
            self._local.connection = None
            connection.invalidate()
            raise
        return row


class CountingRedisStorage(RedisStorage):
    """limits' Redis storage (the same keys, scripts and expiry), whose fixed-window questions
    take one round trip each: `counted` is the hit and the window's end together (the fast
    check's count and headers, where limits asks three times), and `get` reads the count and
    the time left together, which the `get_expiry` limits asks for right after it answers."""

    STORAGE_SCHEME = ["counting+redis", "counting+rediss", "counting+redis+unix"]  # noqa: RUF012
    READ_FOR = 1.0  # seconds a window read by `get` answers `get_expiry` of its key
    HIT_FOR = 0.25  # seconds a hit answers `get` of its key: the same request's headers
    SCRIPT_COUNTED = b"""
local current = redis.call("incrby", KEYS[1], ARGV[2])
if tonumber(current) == tonumber(ARGV[2]) then
  redis.call("expire", KEYS[1], ARGV[1])
end
return {current, redis.call("ttl", KEYS[1])}
"""

    def __init__(self, uri: str, **options: Any) -> None:
        super().__init__(uri.removeprefix("counting+"), **options)
        self.last_hit, self.last_read = _Remembered(self.HIT_FOR), _Remembered(self.READ_FOR)
        self.leases = HitLeases(self)

    def initialize_storage(self, uri: str) -> None:
        super().initialize_storage(uri)
        self.lua_counted = self.get_connection().register_script(self.SCRIPT_COUNTED)

    def counted(self, key: str, expiry: int, amount: int = 1) -> tuple[int, float]:
        """`incr`, and the window's end, in one round trip."""
        count, ttl = self.lua_counted([self.prefixed_key(key)], [expiry, amount])
        self.last_hit.keep(key, int(count), max(int(ttl), 0))
        return int(count), max(int(ttl), 0) + time.time()

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        return self.counted(key, expiry, amount)[0]

    def remember_hit(self, key: str, count: int, ends: float) -> None:
        """What `get` answers of `key` right after this thread's hit (a leased hit's number)."""
        self.last_hit.keep(key, count, max(int(ends - time.time()), 0))

    def get(self, key: str) -> int:
        """The window's count: as this thread's hit on `key` just left it, else read (with
        the time left, for `get_expiry`)."""
        hit = self.last_hit.take(key)
        if hit is None:
            client: Any = self.get_connection(True)  # a redis.Redis
            pipe = client.pipeline(transaction=False)
            pipe.get(self.prefixed_key(key))
            pipe.ttl(self.prefixed_key(key))
            count, ttl = pipe.execute()
            hit = (int(count or 0), max(int(ttl), 0))
        self.last_read.keep(key, hit[1])
        return int(hit[0])

    def get_expiry(self, key: str) -> float:
        last = self.last_read.take(key)
        if last is not None:
            return float(last[0] + time.time())
        return float(super().get_expiry(key))


def _no_commit_flush(dbapi_connection: Any, _record: Any) -> None:
    """A counter's commit does not wait for the WAL flush (PostgreSQL's synchronous_commit off):
    a crash may forget the last moment's hits, never corrupt anything, and a request no longer
    waits for a disk flush to be counted."""
    with dbapi_connection.cursor() as cursor:
        cursor.execute("SET synchronous_commit = off")
    dbapi_connection.commit()


def storage_description(configured: str) -> str:
    if configured.startswith("database"):
        return "counted in the database, shared by every worker and instance"
    if configured.startswith(("redis", "valkey")):
        return "counted in Redis, shared by every worker and instance"
    return (
        "counted in this process's memory only: each gunicorn worker counts on its own, so the"
        " limits multiply by the worker count (set RATELIMIT_STORAGE_URL=database:// or redis://)"
    )


COUNTERS_FILE_SUFFIX = "-ratelimits"


def storage_uri(configured: str, database_url: str = "") -> str:
    """memory:// means the swept in-memory storage; database:// this service's database;
    redis:// the counting Redis storage; any other URI (valkey://…) is used as given.

    On SQLite, database:// counts in a file beside the database (`<file>-ratelimits`), as the
    -wal and -shm files sit beside it: every write to a SQLite file makes each connection
    to it drop its page cache, so a hit counted in the data's own file made every check's
    read start cold (a check cost 855 µs in process against 450 µs)."""
    if configured.startswith("memory://"):
        return "swept-memory://"
    if configured.startswith("database"):
        url = make_url(database_url)
        if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
            beside = url.set(database=f"{url.database}{COUNTERS_FILE_SUFFIX}")
            return "database+" + beside.render_as_string(hide_password=False)
        return "database+" + database_url
    if configured.startswith(("redis://", "rediss://", "redis+unix://")):
        return "counting+" + configured
    return configured


def _settings() -> Settings:
    return current_app.extensions["settings"]  # type: ignore[no-any-return]


def api_rate() -> str:
    return _settings().api_rate_limit


def token_rate() -> str:
    return _settings().token_rate_limit


def public_form_rate() -> str:
    return _settings().public_form_rate


def link_rate() -> str:
    return _settings().public_page_rate_limit


def mailbox_rate() -> str:
    return _settings().mailbox_rate


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


def link_key() -> str:
    """The capability link's token (hashed: the store never holds a working link)."""
    token = str((request.view_args or {}).get("token", ""))
    return "link:" + hashlib.sha256(token.encode()).hexdigest()[:32]


def mailbox_key() -> str:
    """The mailbox a form's `email` would write to, keyed (the store holds no address)."""
    raw = request.form.get("email", "")
    try:
        box = mailbox(normalize_email(raw))
    except InvalidIdentifierError:
        box = "invalid:" + raw.strip().lower()
    secret = current_app.extensions["rules"].identifier_key
    return "mailbox:" + hmac.new(secret, box.encode(), hashlib.sha256).hexdigest()[:32]


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
mailbox_limit = limiter.shared_limit(
    mailbox_rate, scope="mailbox", key_func=mailbox_key, methods=["POST"], error_message=_too_many
)
link_limit = limiter.shared_limit(
    link_rate, scope="link", key_func=link_key, error_message=_too_many
)


def init_rate_limits(app: Flask, settings: Settings) -> None:
    """Configure Flask-Limiter for `app`, put the per-client limit on every blueprint serving
    /v1 and the per-IP limit on the token endpoint. Call it once the blueprints are registered."""
    for name, value in (
        ("API_RATE_LIMIT", settings.api_rate_limit),
        ("TOKEN_RATE_LIMIT", settings.token_rate_limit),
        ("PUBLIC_FORM_RATE", settings.public_form_rate),
        ("PUBLIC_PAGE_RATE_LIMIT", settings.public_page_rate_limit),
        ("MAILBOX_RATE", settings.mailbox_rate),
    ):
        try:
            parse_many(value)
        except ValueError as error:
            raise ConfigError(f"{name} is not a rate limit: {value!r}") from error
    storage_options: dict[str, Any] = {}
    if settings.ratelimit_storage_url.startswith(("redis", "valkey")):
        storage_options["key_prefix"] = settings.ratelimit_key_prefix
    if settings.ratelimit_enabled:
        log.info("rate limits: %s", storage_description(settings.ratelimit_storage_url))
    app.config.update(
        RATELIMIT_STORAGE_URI=storage_uri(settings.ratelimit_storage_url, settings.database_url),
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
    # The limiter is one object every app shares, and init_app gives it this app's store but
    # keeps the last store's failure: without this, an app made after one whose store failed
    # counted in memory until Flask-Limiter's back-off tried the store again.
    flask_limiter: Limiter = limiter  # Flask-Limiter's own state (the version is pinned)
    flask_limiter._storage_dead = False
    strategy, storage = flask_limiter._limiter, flask_limiter._storage
    if type(strategy) is FixedWindowRateLimiter and storage is not None:  # the default one
        flask_limiter._limiter = LeasedFixedWindowRateLimiter(storage)
    for blueprint in _blueprints_under(app, "/v1/"):
        api_limit(blueprint)  # the same Limit each time: Flask-Limiter keeps one per blueprint
    for blueprint in _blueprints_under(app, "/oauth/"):
        token_limit(blueprint)


@functools.lru_cache(maxsize=8)
def _parsed(rate: str) -> tuple[RateLimitItem, ...]:
    """The items of a rate string in the order Flask-Limiter hits them (shortest window first)."""
    return tuple(sorted(parse_many(rate)))


@functools.lru_cache(maxsize=1024)
def _leased_keys(rate: str, args: tuple[str, ...]) -> tuple[tuple[str, int, int, int], ...]:
    """For each item of `rate`: the storage key of `args`, the window's length, the amount
    and the lease's size (the same keys as `RateLimitItem.key_for`, made once per client)."""
    return tuple(
        (item.key_for(*args), item.get_expiry(), item.amount, lease_size(item.amount))
        for item in _parsed(rate)
    )


def can_count_lean() -> bool:
    """Whether `count_api_hit` counts exactly as Flask-Limiter would: the limiter is on and
    initialised, its storage is not in the in-memory fallback, and nothing but the per-client
    shared /v1 limit applies (no default, application or meta limits, no request filters)."""
    flask_limiter: Limiter = limiter  # Flask-Limiter's own state (the version is pinned)
    manager = flask_limiter.limit_manager
    return bool(
        flask_limiter.enabled
        and flask_limiter.initialized
        and not flask_limiter._storage_dead
        and not flask_limiter._request_filters
        and not manager._application_limits
        and not manager._default_limits
        and not flask_limiter._meta_limits
    )


def count_api_hit(rate: str, client_id: str) -> list[tuple[str, str]] | None:
    """Count one /v1 request of `client_id` against `rate` as the per-client shared limit
    (`api_limit`) does, in the same storage under the same keys, and give the headers Flask's
    path would add (`RateLimit-Limit`, `-Remaining`, `-Reset` in seconds), the hits taken a
    lease at a time as on Flask's path (`HitLeases`).

    None when it cannot answer that way: a limit is exceeded (Flask then answers the 429, and
    counts that request once more: with fixed windows an exceeded count stays exceeded) or the
    storage failed (Flask then counts it in its in-memory fallback).
    """
    flask_limiter: Limiter = limiter
    args = [f"client:{client_id}", "api"]
    if flask_limiter._key_prefix:
        args = [flask_limiter._key_prefix, *args]
    strategy = flask_limiter.limiter
    storage = strategy.storage
    items = _parsed(rate)
    try:
        if isinstance(strategy, FixedWindowRateLimiter) and isinstance(
            storage, (DatabaseStorage, CountingRedisStorage)
        ):
            # Each hit's number in its window, the hits taken from the shared count a lease
            # at a time (HitLeases), and the window's end.
            counts = []
            for key, expiry, amount, size in _leased_keys(rate, tuple(args)):
                count, ends = storage.leases.hit(key, expiry, size)
                if count > amount:
                    return None
                counts.append((count, ends))
            reset, remaining = counts[0][1], max(0, items[0].amount - counts[0][0])
        else:
            for item in items:
                if not strategy.hit(item, *args):
                    return None
            reset, remaining = strategy.get_window_stats(items[0], *args)
    except Exception:  # the limiter swallows storage errors: Flask's path decides
        return None
    return [
        (LIMIT_HEADER, str(items[0].amount)),
        (REMAINING_HEADER, str(remaining)),
        (RESET_HEADER, str(max(0, int(reset + 1) - int(time.time())))),
    ]


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
