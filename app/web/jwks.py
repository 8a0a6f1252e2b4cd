"""The audit-signing public keys, current and retired, at /.well-known/jwks.json: no auth."""

from __future__ import annotations

from flask import Blueprint, current_app
from flask.typing import ResponseReturnValue

from app.http import signing_keys

bp = Blueprint("jwks", __name__)


@bp.get("/.well-known/jwks.json")
def jwks() -> ResponseReturnValue:
    """The public keys that sign checkpoints and DPO packages.

    ---
    tags: [audit]
    operationId: getAuditSigningKeys
    description: |
      The audit-signing public keys as a JWK set (RFC 7517): the current P-256 key for ES256
      first, then any retired ones, so signatures made before a key change still verify.
      Each is named by `kid` in the header of the checkpoint and package signatures it made.
      Public, without authentication: it proves, it grants nothing. It is not the key that
      signs access tokens.
    security: []
    responses:
      '200':
        description: The JWK set.
        headers:
          Cache-Control:
            schema: {type: string}
            example: public, max-age=3600
        content:
          application/jwk-set+json:
            schema: {$ref: '#/components/schemas/JwkSet'}
      '500': {$ref: '#/components/responses/InternalServerError'}
    """
    response = current_app.json.response(signing_keys().jwks())
    response.mimetype = "application/jwk-set+json"
    response.headers["Cache-Control"] = "public, max-age=3600"
    return response
