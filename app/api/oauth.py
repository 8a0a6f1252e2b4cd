"""The OAuth 2 token endpoint (client credentials). Errors follow RFC 6749 §5.2."""

from __future__ import annotations

import base64
import binascii
import json

from flask import Blueprint, Response, current_app, request

from app.errors import oauth_error

bp = Blueprint("oauth", __name__)

DESCRIPTIONS = {
    "invalid_request": "The request is missing a parameter or is malformed.",
    "invalid_client": "Client authentication failed.",
    "invalid_grant": "The grant is invalid.",
    "unauthorized_client": "This client may not use this grant type.",
    "unsupported_grant_type": "Only grant_type=client_credentials is supported.",
    "invalid_scope": "The requested scope is invalid or not granted to this client.",
}


def _malformed_authentication() -> str | None:
    """Why the client authentication cannot be read, or None. RFC 6749 §2.3: a client uses
    one authentication method per request; Basic credentials are base64 of UTF-8 text."""
    header = request.headers.get("Authorization", "")
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return "The Basic credentials are not base64 of UTF-8 text."
    if ":" not in decoded:
        return "The Basic credentials must be client_id:client_secret."
    if "client_secret" in request.form:
        return "Use one client authentication method: HTTP Basic or form fields, not both."
    return None


@bp.post("/oauth/token")
def issue_token() -> Response:
    """Issue an access token (client credentials).

    ---
    tags: [auth]
    operationId: issueToken
    description: |
      OAuth 2 client credentials grant (RFC 6749 section 4.4). Authenticate the client with
      HTTP Basic (`client_secret_basic`) or with `client_id` and `client_secret` form fields
      (`client_secret_post`). Without `scope` the token carries every scope the client
      holds; asking for a scope the client does not hold is `invalid_scope`. The access
      token is a signed JWT (RFC 9068) to be sent as `Authorization: Bearer ...`.
    security:
    - clientBasic: []
    - {}
    requestBody:
      required: true
      content:
        application/x-www-form-urlencoded:
          schema:
            type: object
            required: [grant_type]
            properties:
              grant_type:
                type: string
                enum: [client_credentials]
              scope:
                type: string
                description: Space-separated scopes; a subset of the client's.
                example: consent:read consent:write
              client_id:
                type: string
                description: For `client_secret_post` only.
              client_secret:
                type: string
                format: password
                description: For `client_secret_post` only.
    responses:
      '200':
        description: The access token.
        headers:
          Cache-Control:
            schema:
              type: string
              enum: [no-store]
          Pragma:
            schema:
              type: string
              enum: [no-cache]
        content:
          application/json:
            schema: {$ref: '#/components/schemas/Token'}
      '400':
        description: '`invalid_request`, `unsupported_grant_type` or `invalid_scope`.'
        content:
          application/json:
            schema: {$ref: '#/components/schemas/OAuthError'}
      '401':
        description: '`invalid_client`: unknown or revoked client, or a wrong secret.'
        headers:
          WWW-Authenticate:
            schema: {type: string}
        content:
          application/json:
            schema: {$ref: '#/components/schemas/OAuthError'}
      '429': {$ref: '#/components/responses/TooManyRequests'}
      '503': {$ref: '#/components/responses/ServiceUnavailable'}
    """
    malformed = _malformed_authentication()
    if malformed is not None:
        return oauth_error(400, "invalid_request", malformed)
    response: Response = current_app.extensions["oauth_server"].create_token_response()
    if response.status_code >= 400 and response.is_json:
        # error_description is optional in RFC 6749; a client's developer always wants one.
        body = response.get_json()
        if isinstance(body, dict) and not body.get("error_description"):
            body["error_description"] = DESCRIPTIONS.get(body.get("error", ""), "Request refused.")
            response.set_data(json.dumps(body))
    return response
