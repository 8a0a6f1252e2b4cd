"""The audit-signing public key at /.well-known/jwks.json: no auth, it proves, never grants."""

from __future__ import annotations

from flask import Blueprint, current_app
from flask.typing import ResponseReturnValue

from app.http import settings
from app.services.audit import checkpoints

bp = Blueprint("jwks", __name__)


@bp.get("/.well-known/jwks.json")
def jwks() -> ResponseReturnValue:
    config = settings()
    key = checkpoints.signing_key(
        checkpoints.key_path(config.audit_signing_key_path, config.instance_path)
    )
    response = current_app.json.response(checkpoints.public_jwks(key))
    response.mimetype = "application/jwk-set+json"
    response.headers["Cache-Control"] = "public, max-age=3600"
    return response
