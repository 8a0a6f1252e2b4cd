"""The OAuth 2 token endpoint (client credentials). Errors follow RFC 6749 §5.2."""

from __future__ import annotations

import json

from flask import Blueprint, Response, current_app

bp = Blueprint("oauth", __name__)

DESCRIPTIONS = {
    "invalid_request": "The request is missing a parameter or is malformed.",
    "invalid_client": "Client authentication failed.",
    "invalid_grant": "The grant is invalid.",
    "unauthorized_client": "This client may not use this grant type.",
    "unsupported_grant_type": "Only grant_type=client_credentials is supported.",
    "invalid_scope": "The requested scope is invalid or not granted to this client.",
}


@bp.post("/oauth/token")
def issue_token() -> Response:
    response: Response = current_app.extensions["oauth_server"].create_token_response()
    if response.status_code >= 400 and response.is_json:
        # error_description is optional in RFC 6749; a client's developer always wants one.
        body = response.get_json()
        if isinstance(body, dict) and not body.get("error_description"):
            body["error_description"] = DESCRIPTIONS.get(body.get("error", ""), "Request refused.")
            response.set_data(json.dumps(body))
    return response
