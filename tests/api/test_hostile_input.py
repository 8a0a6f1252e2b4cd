"""Hostile bodies on every /v1 write route: a clear 4xx problem, never a 500.

The routes are read from the app's URL map, so a route added later is covered too.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from flask import Flask

from tests.conftest import ApiClient

# Every check these tests make is answered by both paths and compared (tests/check_parity.py).
pytestmark = pytest.mark.usefixtures("check_parity")

WRITE_METHODS = ("POST", "PUT", "PATCH")
SUBSCRIBE = {"email": "ada@example.org", "categories": ["newsletter"]}

# (name, raw body, content type, accepted statuses)
HOSTILE: list[tuple[str, str | bytes, str | None, set[int]]] = [
    ("not json", "{not json", "application/json", {400}),
    ("wrong content type", json.dumps(SUBSCRIBE), "text/plain", {415}),
    ("form instead of json", "email=a@example.org", "application/x-www-form-urlencoded", {415}),
    ("no content type", json.dumps(SUBSCRIBE), None, {415}),
    ("deep arrays", "[" * 100_000 + "]" * 100_000, "application/json", {400}),
    ("deep objects", '{"a":' * 5_000 + "1" + "}" * 5_000, "application/json", {400, 422}),
    ("an array", "[1, 2]", "application/json", {400, 422}),
    ("a bare string", '"hello"', "application/json", {400, 422}),
    ("a huge number", '{"source": 1e999999}', "application/json", {400, 422}),
    ("an unknown field", '{"surprise": true}', "application/json", {400, 422}),
    ("a NUL character", '{"source": "a\\u0000b"}', "application/json", {400}),
    ("a lone surrogate", '{"source": "a\\ud800b"}', "application/json", {400}),
    ("invalid utf-8", b'{"source": "\xff\xfe"}', "application/json", {400}),
    ("oversized", "x" * (3 * 1024 * 1024), "application/json", {413}),
]


def _write_routes(app: Flask) -> Iterator[tuple[str, str]]:
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/v1/"):
            for method in sorted((rule.methods or set()) & set(WRITE_METHODS)):
                yield method, rule.rule


@pytest.fixture
def subject_id(api: ApiClient) -> str:
    response = api.post("/v1/subscriptions", json=SUBSCRIBE)
    assert response.status_code == 202
    return str(response.get_json()["subject_id"])


def test_every_write_route_refuses_hostile_bodies_with_a_4xx_problem(
    app: Flask, api: ApiClient, subject_id: str
) -> None:
    routes = list(_write_routes(app))
    assert ("PATCH", "/v1/subjects/<uuid:subject_id>/preferences") in routes
    assert ("POST", "/v1/subscriptions") in routes
    wrong: list[str] = []
    for method, rule in routes:
        path = (
            rule.replace("<uuid:subject_id>", subject_id)
            .replace("<uuid:request_id>", "00000000-0000-4000-8000-000000000000")
            .replace("<uuid:webhook_id>", "00000000-0000-4000-8000-000000000001")
            .replace("<string(maxlength=40):delivery_id>", "msg_0")
        )
        for name, body, content_type, accepted in HOSTILE:
            if rule == "/v1/imports":  # takes NDJSON or CSV, so any JSON body is a 415
                accepted = {415}
            headers = api.headers | ({"Content-Type": content_type} if content_type else {})
            response = api.http.open(path, method=method, data=body, headers=headers)
            if response.status_code not in accepted:
                wrong.append(f"{method} {rule} with {name}: {response.status_code}")
            elif response.mimetype != "application/problem+json":
                wrong.append(f"{method} {rule} with {name}: {response.mimetype}")
    assert wrong == []


@pytest.mark.parametrize(
    "query",
    [
        "email=a%00@example.org&channel=email&category=newsletter",
        "external_id=a%00b&channel=email&category=newsletter",
        "email=a@example.org&channel=email%00&category=newsletter",
    ],
)
def test_nul_characters_in_a_query_are_422_problems(api: ApiClient, query: str) -> None:
    response = api.get(f"/v1/consent/check?{query}")
    assert response.status_code == 422
    assert response.get_json()["errors"]
    assert response.mimetype == "application/problem+json"


@pytest.mark.parametrize(
    "query",
    [
        # Invalid UTF-8 is decoded to U+FFFD: an address no one has, so no_record.
        "email=%ED%A0%80@example.org&channel=email&category=newsletter",
        "email=" + "a" * 5000 + "@example.org&channel=email&category=newsletter",
        "external_id=" + "x" * 5000 + "&channel=email&category=newsletter",
        "phone=" + "9" * 5000 + "&channel=sms&category=offers",
    ],
)
def test_odd_check_queries_are_answered_or_refused_never_500(api: ApiClient, query: str) -> None:
    response = api.get(f"/v1/consent/check?{query}")
    assert response.status_code in (200, 400, 422)
    if response.status_code != 200:
        assert response.mimetype == "application/problem+json"


def test_nul_characters_in_a_public_form_are_refused(app: Flask) -> None:
    response = app.test_client().post("/no-such-form", data={"email": "a\x00@example.org"})
    assert response.status_code == 422
    assert response.mimetype == "text/html"


@pytest.mark.parametrize(
    ("name", "body"),
    [
        ("invalid utf-8", b'{"email": "\xff\xfe@example.org"}\n'),
        ("a NUL character", b'{"email": "a@example.org", "source": "a\x00b"}\n'),
    ],
)
def test_imports_refuse_bodies_no_row_could_come_from_with_a_problem(
    api: ApiClient, name: str, body: bytes
) -> None:
    response = api.post("/v1/imports", data=body, content_type="application/x-ndjson")
    assert response.status_code == 400, response.get_json()
    assert response.mimetype == "application/problem+json"
