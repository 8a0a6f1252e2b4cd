"""Security headers on every response; HSTS and secure cookies over HTTPS; no-store."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask import Flask, Response
from flask.testing import FlaskClient

from app.security import must_not_be_stored


@pytest.mark.parametrize(
    "path", ["/healthz", "/v1/consent/check", "/no-such-page", "/static/site.css"]
)
def test_every_response_carries_the_security_headers(client: FlaskClient, path: str) -> None:
    response = client.get(path)
    csp = response.headers["Content-Security-Policy"]
    assert "unsafe-inline" not in csp
    assert "unsafe-eval" not in csp
    for directive in (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "frame-ancestors 'none'",
        "form-action 'self'",
        "base-uri 'none'",
    ):
        assert directive in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert "camera=()" in response.headers["Permissions-Policy"]
    assert "Strict-Transport-Security" not in response.headers  # plain http


def test_api_answers_and_token_pages_are_never_stored(client: FlaskClient) -> None:
    assert client.get("/v1/consent/check").headers["Cache-Control"] == "no-store"
    assert client.get("/confirm/abc").headers["Cache-Control"] == "no-store"
    assert client.post("/oauth/token").headers["Cache-Control"] == "no-store"
    assert "no-store" not in client.get("/static/site.css").headers.get("Cache-Control", "")


@pytest.mark.parametrize(
    ("path", "stored"),
    [
        ("/v1/catalog", False),
        ("/p/abc", False),
        ("/x/InFkYS0xMjM0NSI.ZxYwVg.k3mQ9a0xR2n7", False),
        ("/static/site.css", True),
        ("/subscribe", True),
    ],
)
def test_which_paths_may_be_stored(path: str, stored: bool) -> None:
    assert must_not_be_stored(path) is not stored


def test_hsts_is_sent_when_the_request_is_https(client: FlaskClient) -> None:
    response = client.get("/healthz", base_url="https://localhost")
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")


def _with_a_cookie(app: Flask) -> Flask:
    @app.get("/cookie")
    def cookie() -> Response:
        response = Response("ok")
        response.set_cookie("lang", "de")
        return response

    return app


def test_cookies_are_secure_and_hsts_is_sent_on_an_https_site(
    make_app: Callable[..., Flask],
) -> None:
    app = _with_a_cookie(make_app(base_url="https://consent.example.org"))
    assert app.config["SESSION_COOKIE_SECURE"] is True
    response = app.test_client().get("/cookie")
    assert "Strict-Transport-Security" in response.headers
    assert "Secure" in response.headers["Set-Cookie"]


def test_cookies_stay_plain_on_plain_http(make_app: Callable[..., Flask]) -> None:
    response = _with_a_cookie(make_app()).test_client().get("/cookie")
    assert "Secure" not in response.headers["Set-Cookie"]
