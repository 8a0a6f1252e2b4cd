"""app/api/openapi: what the generator adds to a route's docstring, on a small app of its own."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask
from flask.typing import ResponseReturnValue

from app.api.openapi import build, to_yaml
from app.auth import require
from app.domain.vocabulary import Scope


def _app() -> Flask:
    bp = Blueprint("sample", __name__)

    @bp.post("/things/<uuid:subject_id>")
    @require(Scope.CONSENT_WRITE)
    def make_thing(subject_id: Any) -> ResponseReturnValue:
        """Make a thing.

        ---
        operationId: makeThing
        requestBody:
          content:
            application/json:
              schema: MessageLinksRequestSchema
        responses:
          '201':
            description: Made.
            content:
              application/json:
                schema: MessageLinksSchema
          '404': {$ref: '#/components/responses/NotFound'}
        """
        return {}

    @bp.get("/things")
    @require(Scope.CONSENT_READ)
    def list_things() -> ResponseReturnValue:
        """Not described: no YAML after a --- line."""
        return {}

    @bp.get("/public/<name>")
    def public(name: str) -> ResponseReturnValue:
        """A public thing.

        ---
        security: []
        responses:
          '200': {description: It.}
        """
        return {}

    app = Flask(__name__)
    app.register_blueprint(bp, url_prefix="/v1")
    return app


def test_scope_comes_from_require_and_summary_from_the_first_line() -> None:
    operation = build(_app())["paths"]["/v1/things/{subject_id}"]["post"]

    assert operation["security"] == [{"oauth2": ["consent:write"]}]
    assert operation["summary"] == "Make a thing"


def test_every_v1_operation_gets_the_problem_answers_it_can_give() -> None:
    responses = build(_app())["paths"]["/v1/things/{subject_id}"]["post"]["responses"]

    assert sorted(responses) == [
        "201", "400", "401", "403", "404", "413", "415", "422", "429", "500", "503",
    ]  # fmt: skip
    assert responses["401"] == {"$ref": "#/components/responses/Unauthorized"}
    assert responses["404"] == {"$ref": "#/components/responses/NotFound"}
    assert set(responses["201"]["headers"]) == {
        "RateLimit-Limit",
        "RateLimit-Remaining",
        "RateLimit-Reset",
    }


def test_a_route_without_yaml_is_left_out_so_the_parity_test_names_it() -> None:
    assert "/v1/things" not in build(_app())["paths"]


def test_path_parameters_are_the_shared_component_or_a_plain_string() -> None:
    paths = build(_app())["paths"]

    assert paths["/v1/things/{subject_id}"]["parameters"] == [
        {"$ref": "#/components/parameters/SubjectId"}
    ]
    assert paths["/v1/public/{name}"]["parameters"] == [
        {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
    ]
    assert paths["/v1/public/{name}"]["get"]["security"] == []


def test_requests_are_closed_answers_list_their_fields_as_required() -> None:
    schemas = build(_app())["components"]["schemas"]

    request = schemas["MessageLinksRequest"]
    assert request["additionalProperties"] is False
    assert "required" not in request
    assert request["properties"]["channel"] == {
        "allOf": [{"$ref": "#/components/schemas/Name"}],
        "description": "A channel of the catalog.",
        "default": "email",
    }
    answer = schemas["MessageLinks"]
    assert "additionalProperties" not in answer
    assert answer["required"] == ["preference_url", "unsubscribe_url", "headers"]


def test_an_optional_answer_field_is_not_required_and_the_marker_is_gone() -> None:
    notice_text = build(_app())["components"]["schemas"]["NoticeText"]

    assert notice_text["required"] == ["version", "text", "sha256"]
    assert "x-optional" not in to_yaml(build(_app()))
    assert "x-component" not in to_yaml(build(_app()))
