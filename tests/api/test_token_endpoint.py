"""The token endpoint answers malformed or doubled client authentication, and its rate limit,
as RFC 6749 §5.2 says: a JSON `error` and `error_description`, never a 500."""

from __future__ import annotations

import base64
from collections.abc import Callable

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from app.services import clients

GRANT = {"grant_type": "client_credentials"}


def _basic(raw: bytes) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


def _client(engine: Engine) -> clients.Credentials:
    with Session(engine) as session:
        return clients.create(session, "crm", "consent:read", iterations=1000)


def test_basic_credentials_that_are_not_utf8_are_a_400(client: FlaskClient) -> None:
    response = client.post("/oauth/token", data=GRANT, headers=_basic(b"\xff\xfe:\xc3\x28"))
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_request"
    assert "UTF-8" in response.get_json()["error_description"]


def test_basic_credentials_that_are_not_base64_are_a_400(client: FlaskClient) -> None:
    response = client.post(
        "/oauth/token", data=GRANT, headers={"Authorization": "Basic %%%not-base64"}
    )
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_request"


def test_basic_plus_a_form_secret_is_refused(client: FlaskClient, clean_db: Engine) -> None:
    known = _client(clean_db)
    both = client.post(
        "/oauth/token",
        data=GRANT | {"client_secret": "not-the-secret"},
        headers=_basic(f"{known.client_id}:{known.client_secret}".encode()),
    )
    assert both.status_code == 400
    assert both.get_json()["error"] == "invalid_request"
    alone = client.post(
        "/oauth/token",
        data=GRANT,
        headers=_basic(f"{known.client_id}:{known.client_secret}".encode()),
    )
    assert alone.status_code == 200


def test_the_token_endpoint_limit_answers_in_the_oauth_shape(
    make_app: Callable[..., Flask], clean_db: Engine
) -> None:
    app = make_app(ratelimit_enabled=True, token_rate_limit="2/minute")
    http = app.test_client()
    answers = [http.post("/oauth/token", data=GRANT | {"client_id": "x"}) for _ in range(3)]
    limited = answers[-1]
    assert limited.status_code == 429
    assert limited.mimetype == "application/json"
    body = limited.get_json()
    assert set(body) == {"error", "error_description"}
    assert body["error"] == "temporarily_unavailable"
    assert limited.headers["Retry-After"].isdigit()
