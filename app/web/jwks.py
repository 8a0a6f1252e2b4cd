"""The audit-signing public key at /.well-known/jwks.json: no auth, it proves, never grants."""

from __future__ import annotations

from flask import Blueprint, current_app
from flask.typing import ResponseReturnValue

from app.http import settings
from app.services.audit import checkpoints

bp = Blueprint("jwks", __name__)


@bp.get("/.well-known/jwks.json")
def jwks() -> ResponseReturnValue:
    """The public key that signs checkpoints and DPO packages.

    ---
    tags: [audit]
    operationId: getAuditSigningKeys
    description: |
      The audit-signing public key as a JWK set (RFC 7517): a P-256 key for ES256, named by
      `kid` in the header of every checkpoint and package signature. Public, without
      authentication: it proves, it grants nothing. It is not the key that signs access
      tokens.
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
    config = settings()
    key = checkpoints.signing_key(
        checkpoints.key_path(config.audit_signing_key_path, config.instance_path)
    )
    response = current_app.json.response(checkpoints.public_jwks(key))
    response.mimetype = "application/jwk-set+json"
    response.headers["Cache-Control"] = "public, max-age=3600"
    return response
