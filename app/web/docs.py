"""The API description for readers: /openapi.json, and /docs, Swagger UI served from the
swagger-ui-bundle package (never a CDN), under the app's own Content-Security-Policy."""

from __future__ import annotations

from typing import Any

import swagger_ui_bundle
from flask import Blueprint, abort, current_app, render_template, send_from_directory
from flask.typing import ResponseReturnValue

from app.api.openapi import build

bp = Blueprint("docs", __name__)

# Short public names: a path segment of 20 characters or more reads as a token to app/logs.py
# (redacted in logs, never cached), and the bundle's own name is 20 long.
ASSETS = {
    "ui.js": "swagger-ui-bundle.js",
    "ui.css": "swagger-ui.css",
    "icon-32.png": "favicon-32x32.png",
    "icon-16.png": "favicon-16x16.png",
}
ASSET_MAX_AGE = 86_400


def description() -> dict[str, Any]:
    """The app's OpenAPI document, built once: routes and schemas are fixed at start-up."""
    cached: dict[str, Any] | None = current_app.extensions.get("openapi")
    if cached is None:
        cached = current_app.extensions["openapi"] = build(current_app)
    return cached


@bp.get("/openapi.json")
def openapi_json() -> ResponseReturnValue:
    """The API description.

    ---
    tags: [meta]
    operationId: getOpenApi
    description: |
      This document, as JSON: the same as the `openapi.yaml` the service ships. Public,
      without authentication. `GET /docs` shows it as a readable page.
    security: []
    responses:
      '200':
        description: The OpenAPI 3.0 document.
        content:
          application/json:
            schema: {type: object}
    """
    return description()


@bp.get("/docs")
def page() -> ResponseReturnValue:
    return render_template("api_docs.html")


@bp.get("/docs/assets/<name>")
def asset(name: str) -> ResponseReturnValue:
    if name not in ASSETS:
        abort(404)
    return send_from_directory(
        swagger_ui_bundle.swagger_ui_path, ASSETS[name], max_age=ASSET_MAX_AGE
    )
