"""Request ids, JSON logs with them, ProxyFix and the Prometheus metrics after known traffic."""

from __future__ import annotations

import io
import json
import logging
import random
from collections.abc import Callable

import pytest
from flask import Flask
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from app.models import Evidence
from app.observability import log_handler
from app.services.delivery import webhooks
from tests.conftest import ApiClient
from tests.web.test_signup_pages import published, submit

__all__ = ["published"]  # the fixture, imported for these tests


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def scrape(app: Flask, **headers: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = app.test_client().get("/metrics", headers=headers)
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    return samples(response.get_data(as_text=True))


def test_every_answer_carries_a_request_id_the_callers_own_or_a_new_one(app: Flask) -> None:
    client = app.test_client()
    own = client.get("/healthz", headers={"X-Request-ID": "trace-abc.123"})
    made = client.get("/no-such-page")
    hostile = client.get("/healthz", headers={"X-Request-ID": "<script>" * 30})
    assert own.headers["X-Request-ID"] == "trace-abc.123"
    assert made.status_code == 404
    assert len(made.headers["X-Request-ID"]) == 32
    assert "<" not in hostile.headers["X-Request-ID"]


def test_log_lines_are_json_with_the_request_id_and_stay_redacted(app: Flask) -> None:
    stream = io.StringIO()
    handler = log_handler("json")
    handler.setStream(stream)
    logging.getLogger().addHandler(handler)

    @app.get("/logs-something")
    def logs_something() -> str:
        app.logger.warning("looked at /confirm/InFkYS0xMjM0NSI.ZxYwVg.k3mQ9a0xR2n7LzT5vW8yBc")
        return "ok"

    try:
        app.test_client().get("/logs-something", headers={"X-Request-ID": "req-42"})
    finally:
        logging.getLogger().removeHandler(handler)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    mine = [line for line in lines if line["logger"] == app.logger.name]
    assert mine
    assert mine[0]["request_id"] == "req-42"
    assert mine[0]["level"] == "WARNING"
    assert "k3mQ9a0xR2n7LzT5vW8yBc" not in mine[0]["message"]


def test_metrics_count_checks_by_reason_and_time_requests_by_route(
    app: Flask, api: ApiClient
) -> None:
    before = scrape(app)
    for _ in range(3):
        api.get("/v1/consent/check?email=nobody@example.org&channel=email&category=newsletter")
    batch = api.post(
        "/v1/consent/check",
        json={
            "channel": "email",
            "category": "newsletter",
            "emails": ["a@example.org", "b@example.org"],
        },
    )
    assert batch.status_code == 200, batch.get_json()
    after = scrape(app)

    def delta(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    assert delta("consent_center_check_decisions_total", reason="no_record") == 5
    route = {"route": "/v1/consent/check", "method": "GET", "status": "200"}
    assert delta("consent_center_request_duration_seconds_count", **route) == 3
    assert delta("consent_center_request_duration_seconds_bucket", le="+Inf", **route) == 3


def test_state_gauges_follow_the_outbox_the_chain_and_the_jobs(
    published: Engine, app: Flask, api: ApiClient
) -> None:
    empty = scrape(app)
    assert empty[("consent_center_outbox_depth", (("outbox", "mail"),))] == 0
    assert empty[("consent_center_outbox_oldest_age_seconds", (("outbox", "mail"),))] == 0
    assert empty[("consent_center_last_checkpoint_age_seconds", ())] == -1
    assert empty[("consent_center_last_retention_run_age_seconds", ())] == -1

    assert empty[("consent_center_outbox_depth", (("outbox", "webhooks"),))] == 0

    with Session(published) as session:
        webhooks.register(
            session,
            "https://receiver.example/hook",
            ["consent.changed"],
            actor="tests",
            allow_private=False,
        )
    assert submit(app.test_client())[0] == 303
    assert api.post("/v1/audit/checkpoints").status_code == 201
    after = scrape(app)
    assert after[("consent_center_outbox_depth", (("outbox", "mail"),))] == 1
    assert after[("consent_center_outbox_oldest_age_seconds", (("outbox", "mail"),))] >= 0
    # The opt-in's changes wait for the receiver: the webhook lag is their age.
    assert after[("consent_center_outbox_depth", (("outbox", "webhooks"),))] >= 1
    assert after[("consent_center_outbox_oldest_age_seconds", (("outbox", "webhooks"),))] >= 0
    head = ("consent_center_chain_head_seq", ())
    assert after[head] > empty[head] + 1  # the opt-in's events, then the checkpoint
    assert 0 <= after[("consent_center_last_checkpoint_age_seconds", ())] < 60


def test_metrics_can_be_closed_or_need_the_token(
    make_app: Callable[..., Flask],
) -> None:
    closed = make_app(metrics_open=False)
    assert closed.test_client().get("/metrics").status_code == 403
    guarded = make_app(metrics_token="scrape-me")
    assert guarded.test_client().get("/metrics").status_code == 403
    assert scrape(guarded, Authorization="Bearer scrape-me")


def _address() -> str:
    return f"203.0.113.{random.randint(1, 254)}"


@pytest.mark.parametrize("hops", [1, 2])
def test_behind_trusted_proxies_the_client_address_is_the_one_they_saw(
    published: Engine, make_app: Callable[..., Flask], hops: int
) -> None:
    app = make_app(trusted_proxy_hops=hops, ratelimit_enabled=True, public_form_rate="2/minute")
    client, real = app.test_client(), _address()
    proxies = ", ".join(f"10.0.0.{n}" for n in range(1, hops))
    # The client itself sends a spoofed hop; the trusted proxies append what they saw.
    forwarded = ", ".join(filter(None, ["198.51.100.66", real, proxies]))
    client.environ_base.update(REMOTE_ADDR="10.0.0.99", HTTP_X_FORWARDED_FOR=forwarded)
    assert submit(client, email="proxied@example.org")[0] == 303
    with Session(published) as session:
        ips = set(session.scalars(select(Evidence.ip)))
    assert ips == {real}

    # The per-IP limit counts the real client, whatever first hop it claims.
    spoofs = [f"192.0.2.{n}, {real}" + (f", {proxies}" if proxies else "") for n in (1, 2)]
    answers = []
    for spoof in spoofs:
        client.environ_base["HTTP_X_FORWARDED_FOR"] = spoof
        answers.append(submit(client, email="again@example.org")[0])
    assert answers == [303, 429]
    other = app.test_client()
    other.environ_base.update(REMOTE_ADDR="10.0.0.99", HTTP_X_FORWARDED_FOR=_address())
    if hops == 1:
        assert submit(other, email="other@example.org")[0] == 303


def test_tracing_records_a_span_per_request_and_per_query(
    make_app: Callable[..., Flask], api: ApiClient
) -> None:
    pytest.importorskip("opentelemetry.instrumentation.flask", reason="the tracing extra")
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from app.observability import init_tracing

    exporter, provider = InMemorySpanExporter(), TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    traced = make_app()
    init_tracing(traced, provider)
    traced.test_client().get(
        "/v1/consent/check?email=t@example.org&channel=email&category=newsletter",
        headers=api.headers,
    )
    names = [span.name for span in exporter.get_finished_spans()]
    assert any("/v1/consent/check" in name for name in names), names
    assert any(name.startswith(("SELECT", "connect")) for name in names), names
