"""The API description, generated: each route's docstring, the marshmallow schemas it names, and
openapi_base.yaml (the prose and shapes that are not a schema). `consent-center openapi` writes it.

A route is in the spec when its view's docstring holds its OpenAPI operation as YAML after a
`---` line. The generator adds what the code already says: the path parameters, the scope of
`@require(...)`, the problem+json answers every /v1 operation can give and the rate-limit
headers of a success.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import yaml
from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from apispec.ext.marshmallow.common import resolve_schema_instance
from apispec.ext.marshmallow.openapi import OpenAPIConverter
from apispec.yaml_utils import load_yaml_from_docstring
from flask import Flask
from marshmallow import Schema

from app.api import audit_schemas, feed_schemas, schemas

BASE = Path(__file__).with_name("openapi_base.yaml")
METHODS = ("get", "put", "post", "patch", "delete")
# Flask's `<converter:name>` (or `<name>`) is OpenAPI's `{name}`.
FLASK_PARAMETER = re.compile(r"<(?:[^<>:]+:)?([^<>]+)>")
# Component names of the marshmallow schemas the integrators already know them by; a schema
# not named here is a component named after its class, less `Schema`.
COMPONENTS: dict[str, type[Schema]] = {
    "CheckResult": schemas.CheckResultSchema,
    "BatchCheckRequest": schemas.BatchCheckSchema,
    "SubscriptionRequest": schemas.SubscriptionSchema,
    "SubscriptionResult": schemas.SubscriptionResultSchema,
    "Change": schemas.ChangeSchema,
    "PreferencesPatch": schemas.PreferencesPatchSchema,
    "UnsubscribeAllRequest": schemas.UnsubscribeAllSchema,
    "MessageLinksRequest": schemas.MessageLinksRequestSchema,
    "MessageLinks": schemas.MessageLinksSchema,
    "Preferences": schemas.PreferencesSchema,
    "Subject": schemas.SubjectSchema,
    "Erasure": schemas.ErasureSchema,
    "AuditEvent": schemas.AuditEventSchema,
    "EventsPage": schemas.EventsPageSchema,
    "Verification": schemas.VerificationSchema,
    "NoticeRequest": schemas.NoticeSchema,
    "Notice": schemas.NoticeOutSchema,
    "Checkpoint": audit_schemas.CheckpointSchema,
    "RightsRequestIn": audit_schemas.RightsRequestInSchema,
    "RightsRequest": audit_schemas.RightsRequestSchema,
    "NoticeText": audit_schemas.NoticeTextSchema,
    "DoubleOptInEvidence": audit_schemas.DoubleOptInEvidenceSchema,
    "ChangeItem": feed_schemas.ChangeItemSchema,
    "ChangesPage": feed_schemas.ChangesPageSchema,
    "WebhookRequest": feed_schemas.WebhookInSchema,
    "Webhook": feed_schemas.WebhookSchema,
    "WebhookWithSecret": feed_schemas.WebhookCreatedSchema,
    "Webhooks": feed_schemas.WebhookListSchema,
    "WebhookDelivery": feed_schemas.DeliverySchema,
    "WebhookDeliveries": feed_schemas.DeliveryListSchema,
    "OptOutBatch": feed_schemas.OptOutBatchSchema,
    "OptOutResults": feed_schemas.OptOutResultsSchema,
    "Identifier": schemas.IdentifierSchema,
    "Identifiers": schemas.IdentifiersSchema,
    "IdentifierLink": schemas.IdentifierLinkSchema,
    "MergeRequest": schemas.MergeSchema,
    "MergeResult": schemas.MergeResultSchema,
    "ImportRow": schemas.ImportRowSchema,
    "ImportReport": schemas.ImportReportSchema,
}
# What any /v1 operation may answer besides its own documented outcomes.
EVERY_V1 = {
    "401": "Unauthorized",
    "403": "Forbidden",
    "429": "TooManyRequests",
    "500": "InternalServerError",
    "503": "ServiceUnavailable",
}
WITH_BODY = {
    "400": "BadRequest",
    "413": "PayloadTooLarge",
    "415": "UnsupportedMediaType",
    "422": "UnprocessableEntity",
}
WITH_QUERY = {"422": "UnprocessableEntity"}
RATE_LIMITED = ("/v1/", "/oauth/token")
RATE_LIMIT_HEADERS = ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset")


def operations(app: Flask) -> Iterator[tuple[str, str, Any, dict[str, Any]]]:
    """(path, method, view, operation) for every served route that documents itself."""
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        view = app.view_functions[rule.endpoint]
        documented = load_yaml_from_docstring(view.__doc__ or "")
        if not documented:
            continue
        # The docstring's first line is the operation's summary, unless the YAML names one.
        summary = (view.__doc__ or "").strip().split("\n", 1)[0].removesuffix(".")
        methods = sorted(m.lower() for m in rule.methods or () if m.lower() in METHODS)
        path = FLASK_PARAMETER.sub(r"{\1}", rule.rule)
        if any(m in documented for m in METHODS):
            for method in methods:
                yield path, method, view, {"summary": summary} | documented[method]
        else:
            (method,) = methods  # a view serving several methods documents each by name
            yield path, method, view, {"summary": summary} | documented


def _schema_name(schema: type[Schema] | Schema) -> str:
    cls = schema if isinstance(schema, type) else type(schema)
    for name, known in COMPONENTS.items():
        if known is cls:
            return name
    return cls.__name__.removesuffix("Schema")


class _Converter(OpenAPIConverter):
    """Requests (StrictSchema) are closed: an unknown field is a 422. Answers are open, so a
    new field in one breaks no client; and an answer holds every field its schema declares
    (dump writes them all), unless a field's metadata says `x-optional`."""

    def schema2jsonschema(self, schema: Any) -> dict[str, Any]:
        jsonschema: dict[str, Any] = super().schema2jsonschema(schema)  # type: ignore[no-untyped-call]
        instance = resolve_schema_instance(schema)
        jsonschema.pop("additionalProperties", None)
        example = getattr(instance.Meta, "example", None)
        if example is not None:
            jsonschema["example"] = example
        if isinstance(instance, schemas.StrictSchema):
            jsonschema["additionalProperties"] = False
            return jsonschema
        properties = jsonschema.get("properties", {})
        always = [n for n, p in properties.items() if not p.pop("x-optional", False)]
        if always:
            jsonschema["required"] = always
        return jsonschema

    def field2length(self, field: Any, **kwargs: Any) -> dict[str, Any]:
        """A field of our own that is a list (EmailList) is bounded in items, not characters."""
        bounds: dict[str, Any] = super().field2length(field, **kwargs)
        if field.metadata.get("type") == "array":
            return {key.replace("Length", "Items"): value for key, value in bounds.items()}
        return bounds

    def _field2parameter(self, field: Any, *, name: str, location: str) -> dict[str, Any]:
        parameter: dict[str, Any] = super()._field2parameter(field, name=name, location=location)
        if "example" in parameter["schema"]:  # an example of the parameter, not of its type
            parameter["example"] = parameter["schema"].pop("example")
        return parameter


class _Plugin(MarshmallowPlugin):
    Converter = _Converter


def _ref(kind: str, name: str) -> dict[str, str]:
    return {"$ref": f"#/components/{kind}/{name}"}


def _complete(path: str, view: Any, operation: dict[str, Any]) -> dict[str, Any]:
    """The parts of an operation the code already knows, added to what its docstring says."""
    operation = dict(operation)
    scope = getattr(view, "required_scope", None)
    if scope is not None:
        operation.setdefault("security", [{"oauth2": [str(scope)]}])
    responses = dict(operation.get("responses", {}))
    if path.startswith("/v1/"):
        implied = dict(EVERY_V1)
        if "requestBody" in operation:
            implied |= WITH_BODY
        if any(p.get("in") == "query" for p in operation.get("parameters", [])):
            implied |= WITH_QUERY
        for status, name in implied.items():
            responses.setdefault(status, _ref("responses", name))
    if path.startswith(RATE_LIMITED):
        for status, response in responses.items():
            if status.startswith("2") and "$ref" not in response:
                headers = {name: _ref("headers", name) for name in RATE_LIMIT_HEADERS}
                response["headers"] = headers | response.get("headers", {})
    operation["responses"] = dict(sorted(responses.items()))
    return operation


def _path_parameters(path: str, known: dict[str, Any]) -> list[dict[str, Any] | str]:
    """A path parameter is the component of its name where there is one (its format, its
    description), else a plain string."""
    named = {p["name"]: key for key, p in known.items() if p.get("in") == "path"}
    found = re.findall(r"\{([^{}]+)\}", path)
    # apispec makes a component's name a reference to it.
    return [named.get(name, _plain_path_parameter(name)) for name in found]


def _plain_path_parameter(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


def _inline_components(node: Any) -> Any:
    """A property marked `x-component: Name` (a field whose shape is a shared component, such
    as a catalog name) becomes a reference to it, keeping what the field adds of its own."""
    if isinstance(node, list):
        return [_inline_components(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: _inline_components(value) for key, value in node.items()}
    name = node.pop("x-component", None)
    if name is None:
        return node
    own = {k: v for k, v in node.items() if k in ("description", "default", "example")}
    if node.get("nullable"):
        own["nullable"] = True
    return {"allOf": [_ref("schemas", name)], **own} if own else _ref("schemas", name)


def build(app: Flask) -> dict[str, Any]:
    """The OpenAPI document of the app's routes."""
    base = yaml.safe_load(BASE.read_text(encoding="utf-8"))
    info = base["info"]
    spec = APISpec(
        title=info["title"],
        version=info["version"],
        openapi_version=base["openapi"],
        plugins=[_Plugin(schema_name_resolver=_schema_name)],
        info={k: v for k, v in info.items() if k not in ("title", "version")},
        servers=base["servers"],
        tags=base["tags"],
    )
    components = base["components"]
    for name, scheme in components["securitySchemes"].items():
        spec.components.security_scheme(name, scheme)
    for name, parameter in components["parameters"].items():
        spec.components.parameter(name, parameter["in"], parameter)
    for name, header in components["headers"].items():
        spec.components.header(name, header)
    for name, response in components["responses"].items():
        spec.components.response(name, response)
    for name, shape in components["schemas"].items():
        spec.components.schema(name, shape)
    for name, schema in COMPONENTS.items():
        spec.components.schema(name, schema=schema)

    paths: dict[str, dict[str, Any]] = {}
    shared: dict[tuple[str, str], Any] = {}  # (path, method): a reference to a shared body
    for path, method, view, operation in operations(app):
        operation = _complete(path, view, operation)
        if "$ref" in operation.get("requestBody", {}):
            # apispec reads only a body written out: it is shown an empty one, and the reference
            # is put back in what it builds.
            shared[path, method] = operation["requestBody"]
            operation["requestBody"] = {"content": {}}
        paths.setdefault(path, {})[method] = operation
    for path, item in paths.items():
        spec.path(
            path=path,
            operations=item,
            # apispec takes a component's name in the list, though its annotation says dicts.
            parameters=cast(list[dict[Any, Any]], _path_parameters(path, components["parameters"])),
        )
    built: dict[str, Any] = _inline_components(spec.to_dict())
    for (path, method), body in shared.items():
        built["paths"][path][method]["requestBody"] = body
    built["components"]["requestBodies"] = components["requestBodies"]  # apispec has no kind
    built["info"] = {"title": info["title"], "version": info["version"]} | built["info"]
    order = ("openapi", "info", "servers", "tags", "paths", "components")
    return {key: built[key] for key in order} | built


class _Dumper(yaml.SafeDumper):
    """Multi-line prose as YAML block text, so the committed file reads like the docstrings."""


def _represent_text(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    style = "|" if "\n" in text else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_Dumper.add_representer(str, _represent_text)


def to_yaml(document: dict[str, Any]) -> str:
    header = "# Generated by `consent-center openapi` from the routes and app/api; do not edit.\n"
    body = yaml.dump(document, Dumper=_Dumper, sort_keys=False, width=100, allow_unicode=True)
    return header + body


def generate() -> str:
    """The spec as committed: built from an app whose settings cannot change it."""
    from app import create_app
    from app.config import Settings

    with tempfile.TemporaryDirectory() as instance:
        settings = Settings(
            database_url="sqlite://",
            secret_key="openapi-generation-only-never-serves-a-request",
            identifier_key=b"openapi-generation-only",
            instance_path=Path(instance),
        )
        return to_yaml(build(create_app(settings)))
