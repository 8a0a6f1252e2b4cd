"""Schemathesis fuzzing of every operation in openapi.yaml, in-process, with a real bearer token.

Each operation gets valid and invalid requests generated from openapi.yaml and its documented
examples. Since names from the catalog and known subjects are what reach past validation,
requests built from the real catalog and about real subjects (one confirmed subscriber, one
erased) are mixed in. Every response must be free of server errors and match the spec:
status code, content type, body schema and headers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import schemathesis
import yaml
from flask import Flask
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy.orm import Session

from app.domain.catalog import Catalog
from app.domain.rules import Rules
from app.domain.vocabulary import ALL_SCOPES, Method
from app.services.consent import subjects
from tests.conftest import ApiClient
from tests.factories import make_act, make_subscriber

OPENAPI = Path(__file__).resolve().parents[2] / "openapi.yaml"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
FUZZ = settings(
    max_examples=40,
    deadline=None,
    database=None,  # nothing written to .hypothesis/; a failure prints its reproduction
    phases=[Phase.explicit, Phase.generate],  # no shrinking: the report names the request
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
# Operations with a known, open server bug: (path, method) -> pytest.mark.xfail(strict=True, ...).
# Strict, so a fixed bug fails the run until its entry is removed here.
KNOWN_BUGS: dict[tuple[str, str], pytest.MarkDecorator] = {}
OPERATIONS = sorted(
    (path, method.upper())
    for path, item in yaml.safe_load(OPENAPI.read_text(encoding="utf-8"))["paths"].items()
    for method in item
    if method in ("get", "put", "post", "patch", "delete")
)
PARAMS = [
    pytest.param(
        path,
        method,
        id=f"{method} {path}",
        marks=[KNOWN_BUGS[path, method]] if (path, method) in KNOWN_BUGS else [],
    )
    for path, method in OPERATIONS
]
Strategy = st.SearchStrategy[Any]


@dataclass(frozen=True)
class Known:
    """What realistic requests name: the catalog, the test client, and two real subjects."""

    catalog: Catalog
    client_id: str
    client_secret: str
    subscriber: str
    subscriber_email: str
    erased: str
    erased_email: str

    @property
    def subject_ids(self) -> Strategy:
        known = st.sampled_from([self.subscriber, self.subscriber, self.erased])
        return known | known | st.uuids().map(str)

    @property
    def emails(self) -> Strategy:
        return (
            st.sampled_from([self.subscriber_email, f"  {self.subscriber_email.upper()} "])
            | st.just(self.erased_email)
            | st.emails()
        )

    @property
    def topics(self) -> Strategy:
        """A (channel, category) pair the catalog allows, or a purpose."""
        pairs = [(ch, c.name) for c in self.catalog.categories.values() for ch in c.channels]
        return st.sampled_from(pairs).map(lambda p: {"channel": p[0], "category": p[1]}) | (
            st.sampled_from(sorted(self.catalog.purposes)).map(lambda p: {"purpose": p})
        )

    @property
    def changes(self) -> Strategy:
        """A change of a whole channel, a marketing pair or a purpose."""
        channel = st.sampled_from(sorted(self.catalog.channels)).map(lambda c: {"channel": c})
        pair = st.sampled_from(self.catalog.marketing_pairs()).map(
            lambda p: {"channel": p[0], "category": p[1]}
        )
        purpose = st.sampled_from(sorted(self.catalog.purposes)).map(lambda p: {"purpose": p})
        status = st.sampled_from(["granted", "withdrawn"])
        return st.builds(lambda topic, s: topic | {"status": s}, channel | pair | purpose, status)


def _check(known: Known) -> Strategy:
    identifier = (
        known.emails.map(lambda e: {"email": e})
        | known.subject_ids.map(lambda s: {"subject_id": s})
        | st.just({"phone": "+4915112345678"})
        | st.just({"external_id": "crm-42"})
    )
    return st.builds(lambda i, t: {"query": i | t}, identifier, known.topics)


def _batch_check(known: Known) -> Strategy:
    emails = st.lists(known.emails, min_size=1, max_size=20)
    return st.builds(lambda t, e: {"body": t | {"emails": e}}, known.topics, emails)


def _subscribe(known: Known) -> Strategy:
    categories = [
        c.name
        for c in known.catalog.categories.values()
        if "email" in c.channels and not c.is_transactional
    ]
    body = st.fixed_dictionaries(
        {
            "email": known.emails,
            "categories": st.lists(st.sampled_from(categories), min_size=1, max_size=3),
        },
        optional={
            "country": st.sampled_from(["DE", "us", None]),
            "locale": st.sampled_from(["en", "de", None]),
            "ip": st.ip_addresses().map(str),
            "user_agent": st.text(max_size=40),
            "source": st.text(max_size=40) | st.just("nul\x00byte"),
        },
    )
    return body.map(lambda b: {"body": b})


def _change_preferences(known: Known) -> Strategy:
    body = st.fixed_dictionaries({"changes": st.lists(known.changes, min_size=1, max_size=5)})
    return st.builds(
        lambda s, b: {"path_parameters": {"subject_id": s}, "body": b}, known.subject_ids, body
    )


def _about_subject(known: Known) -> Strategy:
    return known.subject_ids.map(lambda s: {"path_parameters": {"subject_id": s}})


def _find_subject(known: Known) -> Strategy:
    return known.emails.map(lambda e: {"query": {"email": e}})


def _audit_export(known: Known) -> Strategy:
    # The edges of the calendar: valid RFC 3339 whose UTC instant is outside datetime's range.
    moments = st.sampled_from(
        ["2024-01-01T00:00:00Z", "0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00"]
    )
    query = st.fixed_dictionaries(
        {"format": st.sampled_from(["ndjson", "csv"])},
        optional={
            "subject_id": known.subject_ids,
            "channel": st.just("email"),
            "since": moments,
            "until": moments,
        },
    )
    return query.map(lambda q: {"query": q})


def _audit_package(known: Known) -> Strategy:
    """The export's filters, which the package shares, without its `format`."""
    return _audit_export(known).map(
        lambda case: {"query": {k: v for k, v in case["query"].items() if k != "format"}}
    )


def _record_rights_request(known: Known) -> Strategy:
    moments = st.sampled_from(
        ["2024-01-31T10:00:00+05:00", "0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00"]
    )
    body = st.fixed_dictionaries(
        {
            "subject_id": known.subject_ids,
            "kind": st.sampled_from(["access", "download", "erasure"]),
        },
        optional={
            "received_at": moments,
            "channel": st.just("letter"),
            "note": st.text(max_size=40),
        },
    )
    return body.map(lambda b: {"body": b})


def _token(known: Known) -> Strategy:
    scopes = st.lists(st.sampled_from(sorted(ALL_SCOPES)), unique=True).map(" ".join)
    body = st.fixed_dictionaries(
        {
            "grant_type": st.just("client_credentials"),
            "client_id": st.just(known.client_id),
            "client_secret": st.just(known.client_secret),
        },
        optional={"scope": scopes | st.just("consent:read nonsense")},
    )
    return body.map(lambda b: {"body": b})


REALISTIC: dict[tuple[str, str], Callable[[Known], Strategy]] = {
    ("/v1/consent/check", "GET"): _check,
    ("/v1/consent/check", "POST"): _batch_check,
    ("/v1/subscriptions", "POST"): _subscribe,
    ("/v1/subjects", "GET"): _find_subject,
    ("/v1/subjects/{subject_id}/preferences", "PATCH"): _change_preferences,
    ("/v1/subjects/{subject_id}/preferences", "GET"): _about_subject,
    ("/v1/subjects/{subject_id}/unsubscribe-all", "POST"): _about_subject,
    ("/v1/subjects/{subject_id}/export", "GET"): _about_subject,
    ("/v1/subjects/{subject_id}", "DELETE"): _about_subject,
    ("/v1/audit/export", "GET"): _audit_export,
    ("/v1/audit/package", "GET"): _audit_package,
    ("/v1/subjects/{subject_id}/evidence/double-opt-in", "GET"): _about_subject,
    ("/v1/subjects/{subject_id}/links", "POST"): _about_subject,
    ("/v1/rights-requests", "POST"): _record_rights_request,
    ("/oauth/token", "POST"): _token,
}


def generated(schema: Any, path: str, method: str) -> Strategy:
    """Valid and invalid requests from the spec alone, and its documented examples."""
    operation = schema[path][method]
    strategies = [operation.as_strategy(), *schema.get_strategies_from_examples(operation)]
    if list(operation.query) or list(operation.body) or list(operation.path_parameters):
        strategies.append(operation.as_strategy(GenerationMode.NEGATIVE))
    return st.one_of(strategies)


def realistic(schema: Any, path: str, method: str, known: Known) -> Strategy | None:
    """Requests that name what exists, so they reach past validation."""
    if (path, method) not in REALISTIC:
        return None
    operation = schema[path][method]
    media_type = next((body.media_type for body in operation.body), None)
    return REALISTIC[path, method](known).map(
        lambda parts: operation.Case(media_type=media_type, **parts)
    )


def seed(session: Session, rules: Rules, api: ApiClient) -> Known:
    subscriber = make_subscriber(session, rules, email="ada@example.org")
    erased = make_subscriber(session, rules, email="gone@example.org")
    subjects.erase(session, rules, erased, make_act(method=Method.ADMIN))
    return Known(
        catalog=rules.catalog,
        client_id=api.client_id,
        client_secret=api.client_secret,
        subscriber=subscriber,
        subscriber_email="ada@example.org",
        erased=erased,
        erased_email="gone@example.org",
    )


@pytest.mark.slow
@pytest.mark.parametrize(("path", "method"), PARAMS)
def test_operation_conforms_to_openapi(
    app: Flask, api: ApiClient, session: Session, rules: Rules, path: str, method: str
) -> None:
    known = seed(session, rules, api)
    schema = schemathesis.openapi.from_path(OPENAPI)
    schema.app = app

    for strategy in (generated(schema, path, method), realistic(schema, path, method, known)):
        if strategy is None:
            continue

        @FUZZ
        @given(case=strategy)
        def fuzz(case: Any) -> None:
            # buffered: the client closes the response even when a streamed body raises, so
            # its connection goes back to the pool rather than holding locks on the tables.
            case.call_and_validate(headers=api.headers, checks=CHECKS, buffered=True)

        fuzz()
