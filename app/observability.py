"""Request ids, structured logs, Prometheus metrics and optional tracing: the HTTP edge's view.

Every answer carries X-Request-ID (the caller's own when it sent a sane one, else a new one) and
every log line written while serving it names the same id. Metrics live in prometheus-client;
under gunicorn, gunicorn.conf.py points PROMETHEUS_MULTIPROC_DIR at a shared folder so that
GET /metrics adds up every worker. Gauges about the service's state are read from the database
when /metrics is scraped.
"""

from __future__ import annotations

import functools
import hmac
import logging
import re
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import nullcontext
from datetime import UTC, datetime
from typing import Any

import uuid_utils
from flask import Blueprint, Flask, Response, current_app, g, has_request_context, request
from flask.typing import ResponseReturnValue
from prometheus_client import REGISTRY as PROCESS_REGISTRY
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy.orm import Session

from app.config import ConfigError, Settings
from app.errors import problem
from app.extensions import db
from app.http import settings as current_settings
from app.logs import JSONFormatter, RedactingFilter
from app.services import operations

REQUEST_ID = "X-Request-ID"
SANE_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
PREFIX = "consent_center"

REQUEST_SECONDS = Histogram(
    f"{PREFIX}_request_duration_seconds",
    "Time to answer a request, by route template, method and status.",
    ["route", "method", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0),
)
CHECK_DECISIONS = Counter(
    f"{PREFIX}_check_decisions", "Consent check answers, by reason.", ["reason"]
)

bp = Blueprint("metrics", __name__)


def count_decisions(*reasons: str) -> None:
    """One count per answered question (a batch check counts each address)."""
    tally: dict[str, int] = {}
    for reason in reasons:
        tally[reason] = tally.get(reason, 0) + 1
    count_tallied(tally)


def count_tallied(tally: Mapping[str, int]) -> None:
    """`count_decisions` for answers already counted by reason (the batch check)."""
    for reason, times in tally.items():
        _decisions(reason).inc(times)


# Each metric's child for one set of label values, looked up once: `labels()` takes a lock
# and checks its arguments on every call, a tenth of the fast check's metrics. The values
# are bounded (reasons, route templates, methods, statuses); prometheus-client keeps the
# children itself, so these hold nothing more.
@functools.lru_cache(maxsize=64)
def _decisions(reason: str) -> Any:
    return CHECK_DECISIONS.labels(reason)


@functools.lru_cache(maxsize=4096)
def request_seconds(route: str, method: str, status: str) -> Any:
    """REQUEST_SECONDS' child for a route template, method and status."""
    return REQUEST_SECONDS.labels(route, method, status)


def request_id() -> str | None:
    return g.get("request_id") if has_request_context() else None


class RequestIdFilter(logging.Filter):
    """Puts the current request's id on every record (None outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id()
        return True


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"


class StderrHandler(logging.StreamHandler[Any]):
    """Writes to whatever sys.stderr is when a record comes (click and pytest swap it), unless
    given a stream of its own."""

    def __init__(self) -> None:
        self._own: Any = None
        super().__init__()

    @property
    def stream(self) -> Any:
        return self._own or sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        self._own = None if value is sys.stderr else value


def log_handler(log_format: str) -> logging.StreamHandler[Any]:
    if log_format not in ("json", "text"):
        raise ConfigError(f"LOG_FORMAT must be json or text, not {log_format!r}")
    handler = StderrHandler()
    handler.set_name("consent-center")
    handler.setFormatter(
        JSONFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)
    )
    # Filters on the handler see records propagated from every logger, not only its own.
    handler.addFilter(RequestIdFilter())
    handler.addFilter(RedactingFilter())
    return handler


def configure_logging(settings: Settings) -> None:
    """One handler on the root logger, whichever app is created how often; idempotent."""
    root = logging.getLogger()
    for existing in root.handlers:
        if existing.get_name() == "consent-center":
            root.removeHandler(existing)
    root.addHandler(log_handler(settings.log_format))
    if root.level > logging.INFO or root.level == logging.NOTSET:
        root.setLevel(logging.INFO)
    for name in ("gunicorn.error",):
        for handler in logging.getLogger(name).handlers:
            handler.addFilter(RequestIdFilter())


def sane_request_id(given: str) -> str:
    """The caller's X-Request-ID where it is sane, else a new random one (a UUIDv4's hex;
    uuid-utils makes it in 0.1 µs against the standard library's 1.4)."""
    return given if SANE_ID.fullmatch(given) else uuid_utils.uuid4().hex


def _start() -> None:
    g.request_id = sane_request_id(request.headers.get(REQUEST_ID, ""))
    g.started = time.perf_counter()


def _finish(response: Response) -> Response:
    response.headers[REQUEST_ID] = g.get("request_id") or sane_request_id("")
    started = g.get("started")
    if started is not None:
        route = request.url_rule.rule if request.url_rule is not None else "unmatched"
        request_seconds(route, request.method, str(response.status_code)).observe(
            time.perf_counter() - started
        )
    return response


class StateCollector(Collector):
    """Gauges read from the database at scrape time: the same in every worker."""

    def __init__(self, session: Session, now: datetime, replica: Session | None = None) -> None:
        self.session, self.now, self.replica = session, now, replica

    def collect(self) -> Iterator[Metric]:
        state = operations.snapshot(self.session)
        depth = GaugeMetricFamily(
            f"{PREFIX}_outbox_depth", "Messages waiting in an outbox.", labels=["outbox"]
        )
        oldest = GaugeMetricFamily(
            f"{PREFIX}_outbox_oldest_age_seconds",
            "Age of the oldest waiting message (0 when none waits): the lag of that outbox.",
            labels=["outbox"],
        )
        for name, queue in sorted(state.queues.items()):
            depth.add_metric([name], queue.depth)
            oldest.add_metric([name], self._age(queue.oldest_at) or 0.0)
        yield depth
        yield oldest
        yield GaugeMetricFamily(
            f"{PREFIX}_chain_head_seq", "Sequence number of the audit chain's head.", state.head_seq
        )
        for name, at, what in (
            ("checkpoint", state.last_checkpoint_at, "the last signed checkpoint"),
            ("retention_run", state.last_retention_at, "the last retention run"),
        ):
            age = self._age(at)
            yield GaugeMetricFamily(
                f"{PREFIX}_last_{name}_age_seconds",
                f"Seconds since {what} (-1: never).",
                -1.0 if age is None else age,
            )
        lag = None if self.replica is None else operations.replica_lag_seconds(self.replica)
        if lag is not None:
            yield GaugeMetricFamily(
                f"{PREFIX}_replica_lag_seconds",
                "How far the read replica (DATABASE_READ_URL) trails the primary.",
                lag,
            )

    def _age(self, at: datetime | None) -> float | None:
        return None if at is None else max(0.0, (self.now - at).total_seconds())


def _allowed(settings: Settings) -> bool:
    if settings.metrics_token:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(
            token.strip().encode(), settings.metrics_token.encode()
        )
    return settings.metrics_are_open


@bp.get("/metrics")
def metrics() -> ResponseReturnValue:
    settings = current_settings()
    if not _allowed(settings):
        return problem(403, "Metrics need the configured METRICS_TOKEN.")
    if settings.prometheus_multiproc_dir:
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(settings.prometheus_multiproc_dir))  # type: ignore[no-untyped-call]
    else:
        registry = PROCESS_REGISTRY
    replica_engine = current_app.extensions.get("replica_engine")
    with Session(replica_engine) if replica_engine else nullcontext() as replica:
        state = CollectorRegistry()
        state.register(StateCollector(db.session(), datetime.now(UTC), replica))
        body = generate_latest(registry) + generate_latest(state)
    return Response(body, mimetype="text/plain; version=0.0.4; charset=utf-8")


def init_observability(app: Flask, settings: Settings) -> None:
    configure_logging(settings)
    app.before_request(_start)
    # Registered first, so it runs last: it sees the final status of every answer.
    app.after_request(_finish)
    app.register_blueprint(bp)
    if settings.tracing:
        init_tracing(app)


def init_tracing(app: Flask, provider: Any = None) -> None:
    """OpenTelemetry spans for requests and queries. By default they go to an OTLP/HTTP exporter
    configured by the standard OTEL_EXPORTER_OTLP_* variables (which it reads itself)."""
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.instrumentation.flask import FlaskInstrumentor
        from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as error:
        raise ConfigError(
            "OTEL_TRACING=true needs the tracing extra: pip install 'consent-center[tracing]'"
        ) from error
    if provider is None:
        provider = TracerProvider()
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    FlaskInstrumentor().instrument_app(app, tracer_provider=provider)  # type: ignore[no-untyped-call, unused-ignore]
    with app.app_context():
        # Its declared range stops before SQLAlchemy 2.1, whose engine events it uses unchanged.
        SQLAlchemyInstrumentor().instrument(
            engine=db.engine, tracer_provider=provider, skip_dep_check=True
        )
