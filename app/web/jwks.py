"""The audit-signing public keys, current and retired, at /.well-known/jwks.json: no auth."""

from __future__ import annotations

from flask import Blueprint, current_app
from flask.typing import ResponseReturnValue

from app.http import signing_keys

bp = Blueprint("jwks", __name__)


@bp.get("/.well-known/jwks.json")
def jwks() -> ResponseReturnValue:
    response = current_app.json.response(signing_keys().jwks())
    response.mimetype = "application/jwk-set+json"
    response.headers["Cache-Control"] = "public, max-age=3600"
    return response
