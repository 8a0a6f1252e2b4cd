"""openapi.yaml against the app: current with the generator, every route documented, nothing
documented that isn't served."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import schemathesis
import yaml
from flask import Flask

from app.api.openapi import generate
from app.domain.vocabulary import ALL_SCOPES
from tests.conftest import ApiClient

OPENAPI = Path(__file__).resolve().parent.parent / "openapi.yaml"
METHODS = frozenset({"get", "put", "post", "patch", "delete"})
SERVICE_ROUTES = {("POST", "/oauth/token"), ("GET", "/healthz"), ("GET", "/readyz")}
# Flask's `<converter:name>` (or `<name>`) is OpenAPI's `{name}`.
FLASK_PARAMETER = re.compile(r"<(?:[^<>:]+:)?([^<>]+)>")


@cache
def spec() -> dict[str, Any]:
    with OPENAPI.open(encoding="utf-8") as file:
        loaded: dict[str, Any] = yaml.safe_load(file)
    return loaded


def documented() -> set[tuple[str, str]]:
    return {
        (method.upper(), path)
        for path, item in spec()["paths"].items()
        for method in item
        if method in METHODS
    }


def served(app: Flask) -> set[tuple[str, str]]:
    return {
        (method, FLASK_PARAMETER.sub(r"{\1}", rule.rule))
        for rule in app.url_map.iter_rules()
        for method in rule.methods or ()
        if method not in ("HEAD", "OPTIONS")
    }


def v1_operations() -> list[tuple[str, str, dict[str, Any]]]:
    return sorted(
        (method.upper(), path, operation)
        for path, item in spec()["paths"].items()
        if path.startswith("/v1/")
        for method, operation in item.items()
        if method in METHODS
    )


def test_committed_openapi_yaml_is_what_the_generator_writes() -> None:
    assert OPENAPI.read_text(encoding="utf-8") == generate(), (
        "openapi.yaml is not current: run `consent-center openapi > openapi.yaml`"
    )


def test_every_v1_route_is_documented_and_every_documented_route_is_served(app: Flask) -> None:
    routes = served(app)
    v1_served = {(m, p) for m, p in routes if p.startswith("/v1/")}
    v1_documented = {(m, p) for m, p in documented() if p.startswith("/v1/")}

    assert sorted(v1_served - v1_documented) == [], "served but not in openapi.yaml"
    assert sorted(v1_documented - v1_served) == [], "in openapi.yaml but not served"


def test_token_endpoint_and_health_probes_are_documented_and_served(app: Flask) -> None:
    assert documented() >= SERVICE_ROUTES
    assert served(app) >= SERVICE_ROUTES


def test_openapi_yaml_is_a_valid_openapi_3_0_document() -> None:
    assert spec()["openapi"].startswith("3.0.")
    # Validates against the OpenAPI 3.0 meta-schema; raises on the first violation.
    schemathesis.openapi.from_path(OPENAPI).validate()


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def test_every_ref_resolves() -> None:
    for ref in set(_refs(spec())):
        assert ref.startswith("#/"), f"only local references: {ref}"
        node: Any = spec()
        for part in ref.removeprefix("#/").split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            assert isinstance(node, dict), ref
            assert part in node, f"dangling $ref {ref}"
            node = node[part]


@pytest.mark.parametrize(("method", "path", "operation"), v1_operations())
def test_v1_operation_errors_are_problem_details(
    method: str, path: str, operation: dict[str, Any]
) -> None:
    responses = spec()["components"]["responses"]
    for status in ("401", "403", "500", "503"):
        assert status in operation["responses"], f"{method} {path} lacks {status}"
    for status, response in operation["responses"].items():
        if int(status) < 400:
            continue
        if "$ref" in response:
            response = responses[response["$ref"].rsplit("/", 1)[1]]
        assert list(response["content"]) == ["application/problem+json"], (method, path, status)
        schema = response["content"]["application/problem+json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/Problem"}, (method, path, status)


@pytest.mark.parametrize(
    ("method", "path", "operation"), [op for op in v1_operations() if "requestBody" in op[2]]
)
def test_v1_request_bodies_reject_unknown_fields(
    method: str, path: str, operation: dict[str, Any]
) -> None:
    if path == "/v1/imports":  # a file of rows, not one JSON object
        assert list(operation["requestBody"]["content"]) == ["application/x-ndjson", "text/csv"]
        assert spec()["components"]["schemas"]["ImportRow"]["additionalProperties"] is False
        return
    body = operation["requestBody"]
    if "$ref" in body:  # a body that several operations share
        body = spec()["components"]["requestBodies"][body["$ref"].rsplit("/", 1)[1]]
    assert list(body["content"]) == ["application/json"]
    schema = body["content"]["application/json"]["schema"]
    name = schema["$ref"].rsplit("/", 1)[1]
    assert spec()["components"]["schemas"][name]["additionalProperties"] is False


def _declared_scope(operation: dict[str, Any]) -> str:
    (requirement,) = operation["security"]
    (scope,) = requirement["oauth2"]
    assert scope in ALL_SCOPES
    return str(scope)


@pytest.mark.parametrize(("method", "path", "operation"), v1_operations())
def test_v1_operation_needs_exactly_the_scope_it_declares(
    make_api: Callable[..., ApiClient], method: str, path: str, operation: dict[str, Any]
) -> None:
    scope = _declared_scope(operation)
    url = re.sub(r"\{[a-z_]+_id\}", lambda _: str(uuid.uuid4()), path)
    holding = make_api(scope)
    lacking = make_api(" ".join(sorted(ALL_SCOPES - {scope})))

    allowed = holding.http.open(url, method=method, headers=holding.headers)
    refused = lacking.http.open(url, method=method, headers=lacking.headers)
    anonymous = holding.http.open(url, method=method)

    assert allowed.status_code not in (401, 403), allowed.get_json()
    assert refused.status_code == 403
    assert anonymous.status_code == 401
    assert refused.mimetype == anonymous.mimetype == "application/problem+json"
