"""OAuth 2 client credentials and scope enforcement, through the real token endpoint."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from app.services import clients
from tests.conftest import ApiClient

# Every check these tests make is answered by both paths and compared (tests/check_parity.py).
pytestmark = pytest.mark.usefixtures("check_parity")

CHECK = "/v1/consent/check?email=a@example.org&channel=email&category=newsletter"


def test_a_token_is_issued_for_good_credentials(client: FlaskClient, clean_db: Engine) -> None:
    with Session(clean_db) as session:
        credentials = clients.create(session, "crm", "consent:read", iterations=1000)
    response = client.post(
        "/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": credentials.client_id,
            "client_secret": credentials.client_secret,
        },
    )
    body = response.get_json()
    assert response.status_code == 200
    assert body["token_type"] == "Bearer"
    assert body["scope"] == "consent:read"
    assert body["expires_in"] == 3600
    assert body["access_token"].count(".") == 2
    assert response.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize(
    ("form", "error"),
    [
        ({"grant_type": "client_credentials"}, "invalid_client"),
        ({"grant_type": "password"}, "unsupported_grant_type"),
        ({"grant_type": "client_credentials", "scope": "audit:read"}, "invalid_scope"),
    ],
)
def test_token_endpoint_errors_follow_rfc6749(
    client: FlaskClient, clean_db: Engine, form: dict[str, str], error: str
) -> None:
    with Session(clean_db) as session:
        credentials = clients.create(session, "crm", "consent:read", iterations=1000)
    auth = (
        credentials.client_id,
        "wrong" if error == "invalid_client" else credentials.client_secret,
    )
    response = client.post("/oauth/token", data=form, auth=auth)
    assert response.status_code in (400, 401)
    assert response.get_json()["error"] == error
    assert "error_description" in response.get_json()


def test_no_token_is_a_401_problem(client: FlaskClient) -> None:
    response = client.get(CHECK)
    assert response.status_code == 401
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["status"] == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("token", ["garbage", "a.b.c", ""])
def test_a_bad_token_is_a_401_problem(client: FlaskClient, token: str) -> None:
    response = client.get(CHECK, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert response.mimetype == "application/problem+json"


def test_a_tampered_token_is_refused(api: ApiClient) -> None:
    header, payload, signature = api.token.split(".")
    forged = f"{header}.{payload}.{signature[:-2]}AA"
    response = api.http.get(CHECK, headers={"Authorization": f"Bearer {forged}"})
    assert response.status_code == 401


def test_a_token_without_the_scope_is_a_403_problem(make_api: Callable[..., ApiClient]) -> None:
    reader = make_api("consent:read")
    assert reader.get(CHECK).status_code == 200
    response = reader.get("/v1/audit/verify")
    assert response.status_code == 403
    assert response.mimetype == "application/problem+json"
    assert reader.delete("/v1/subjects/00000000-0000-4000-8000-000000000000").status_code == 403


def test_a_revoked_client_is_refused(make_app: Callable[..., Flask], clean_db: Engine) -> None:
    from datetime import timedelta

    app = make_app(revocation_refresh=timedelta(seconds=0))
    http = app.test_client()
    with Session(clean_db) as session:
        credentials = clients.create(session, "crm", "consent:read", iterations=1000)
    token = http.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(credentials.client_id, credentials.client_secret),
    ).get_json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    first = http.get(CHECK, headers=headers)
    assert first.status_code == 200, first.get_json()
    with Session(clean_db) as session:
        clients.revoke(session, credentials.client_id)
    assert http.get(CHECK, headers=headers).status_code == 401
    again = http.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(credentials.client_id, credentials.client_secret),
    )
    assert again.status_code == 401


def test_client_secrets_are_stored_hashed(clean_db: Engine) -> None:
    from app.models import OAuthClient

    with Session(clean_db) as session:
        credentials = clients.create(session, "crm", "consent:read", iterations=1000)
        row = session.get(OAuthClient, credentials.client_id)
        assert row is not None
        assert credentials.client_secret not in row.secret_hash
        assert clients.check_secret(row.secret_hash, credentials.client_secret)
        assert not clients.check_secret(row.secret_hash, credentials.client_secret + "x")
