"""The DPO pages: login with an audit:read client, the chart, the search, the printable record."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from app.domain.rules import Rules
from app.services import clients
from app.services.privacy_center import rights
from tests.conftest import ApiClient
from tests.factories import make_subscriber


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found is not None
    return found.group(1)


def sign_in(client: FlaskClient, client_id: str, secret: str) -> int:
    token = csrf_of(client.get("/dpo/login").get_data(as_text=True))
    form = {"client_id": client_id, "client_secret": secret, "csrf_token": token}
    return int(client.post("/dpo/login", data=form).status_code)


def sign_in_dpo(client: FlaskClient, make_api: Callable[..., ApiClient]) -> int:
    """A new client with audit:read signs in."""
    dpo = make_api("audit:read")
    return sign_in(client, dpo.client_id, dpo.client_secret)


def test_the_page_needs_a_login(client: FlaskClient) -> None:
    response = client.get("/dpo")
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/dpo/login")


def test_an_audit_read_client_signs_in_with_a_strict_httponly_cookie(
    client: FlaskClient, make_api: Callable[..., ApiClient]
) -> None:
    dpo = make_api("audit:read")
    token = csrf_of(client.get("/dpo/login").get_data(as_text=True))
    response = client.post(
        "/dpo/login",
        data={"client_id": dpo.client_id, "client_secret": dpo.client_secret, "csrf_token": token},
    )
    assert response.status_code == 303
    cookie = next(c for c in response.headers.getlist("Set-Cookie") if c.startswith("dpo_session"))
    assert "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie
    assert client.get("/dpo").status_code == 200


def test_a_wrong_secret_or_a_client_without_audit_read_is_refused(
    client: FlaskClient, make_api: Callable[..., ApiClient]
) -> None:
    dpo = make_api("audit:read")
    assert sign_in(client, dpo.client_id, "wrong") == 401
    other = make_api("consent:read consent:write")
    assert sign_in(client, other.client_id, other.client_secret) == 401
    assert client.get("/dpo").status_code == 302


def test_a_login_without_the_csrf_token_is_refused(
    client: FlaskClient, make_api: Callable[..., ApiClient]
) -> None:
    dpo = make_api("audit:read")
    client.get("/dpo/login")
    response = client.post(
        "/dpo/login",
        data={"client_id": dpo.client_id, "client_secret": dpo.client_secret, "csrf_token": "x"},
    )
    assert response.status_code == 400
    assert client.get("/dpo").status_code == 302


def test_revoking_the_client_ends_its_session(
    client: FlaskClient, make_api: Callable[..., ApiClient], clean_db: Engine
) -> None:
    dpo = make_api("audit:read")
    assert sign_in(client, dpo.client_id, dpo.client_secret) == 303
    with Session(clean_db) as session:
        clients.revoke(session, dpo.client_id)
    assert client.get("/dpo").status_code == 302


def test_the_chart_is_inline_svg_without_script_or_inline_style(
    client: FlaskClient, make_api: Callable[..., ApiClient], clean_db: Engine, rules: Rules
) -> None:
    with Session(clean_db) as session:
        make_subscriber(session, rules)
    sign_in_dpo(client, make_api)
    page = client.get("/dpo").get_data(as_text=True)
    assert "<svg" in page
    assert 'class="granted"' in page
    assert "newsletter: 1 granted, 0 withdrawn" in page
    assert "<script" not in page
    assert "style=" not in page


def test_the_search_filters_and_pages_the_trail(
    client: FlaskClient, make_api: Callable[..., ApiClient], clean_db: Engine, rules: Rules
) -> None:
    with Session(clean_db) as session:
        subject_ids = [
            make_subscriber(session, rules, email=f"p{n}@example.org") for n in range(14)
        ]
    sign_in_dpo(client, make_api)
    first = client.get("/dpo?action=confirm").get_data(as_text=True)
    assert first.count('<td data-label="action">confirm</td>') == 28
    assert "Next page" not in first
    everything = client.get("/dpo").get_data(as_text=True)
    assert "Next page" in everything
    one = client.get(f"/dpo?subject_id={subject_ids[3]}").get_data(as_text=True)
    assert one.count(f"{subject_ids[3][:8]}…") == 4
    assert client.get("/dpo?since=not-a-date").status_code == 422
    assert client.get("/dpo?until=9999-12-31").status_code == 422  # was a 500 (date overflow)


def test_the_double_opt_in_record_prints_the_three_steps(
    client: FlaskClient, make_api: Callable[..., ApiClient], clean_db: Engine, rules: Rules
) -> None:
    with Session(clean_db) as session:
        subject_id = make_subscriber(session, rules)
    sign_in_dpo(client, make_api)
    page = client.get(f"/dpo/subjects/{subject_id}/double-opt-in").get_data(as_text=True)
    assert "1. Request" in page
    assert "198.51.100.7" in page
    assert "3. Confirmation" in page


def test_signing_out_needs_the_session_csrf_token(
    client: FlaskClient, make_api: Callable[..., ApiClient]
) -> None:
    sign_in_dpo(client, make_api)
    assert client.post("/dpo/logout", data={"csrf_token": "forged"}).status_code == 400
    page = client.get("/dpo")
    assert page.status_code == 200
    client.post("/dpo/logout", data={"csrf_token": csrf_of(page.get_data(as_text=True))})
    assert client.get("/dpo").status_code == 302


def test_sign_in_attempts_are_rate_limited(
    make_app: Callable[..., Flask], make_api: Callable[..., ApiClient]
) -> None:
    dpo = make_api("audit:read")
    browser = make_app(ratelimit_enabled=True).test_client()
    codes = [sign_in(browser, dpo.client_id, "wrong") for _ in range(11)]
    assert codes[:10] == [401] * 10
    assert codes[10] == 429


@pytest.mark.parametrize("query", ["_method=POST", "_external=1&_anchor=x", "_scheme=ftp&x=1"])
def test_url_for_arguments_in_the_query_are_ignored_not_a_500(
    client: FlaskClient, make_api: Callable[..., ApiClient], query: str
) -> None:
    assert sign_in_dpo(client, make_api) == 303
    response = client.get(f"/dpo?{query}")
    assert response.status_code == 200
    assert "_method" not in response.get_data(as_text=True)


def test_the_dpo_runs_verify_from_the_page_and_sees_a_broken_chain(
    client: FlaskClient, make_api: Callable[..., ApiClient], clean_db: Engine, rules: Rules
) -> None:
    with Session(clean_db) as session:
        make_subscriber(session, rules)
    sign_in_dpo(client, make_api)
    token = csrf_of(client.get("/dpo").get_data(as_text=True))
    ok = client.post("/dpo/verify", data={"csrf_token": token}).get_data(as_text=True)
    assert 'data-ok="true"' in ok
    assert "events checked" in ok
    with clean_db.begin() as connection:
        connection.execute(text("UPDATE consent_events SET category = 'offers' WHERE seq = 2"))
    broken = client.post("/dpo/verify", data={"csrf_token": token}).get_data(as_text=True)
    assert 'data-ok="false"' in broken
    assert "Verification failed at event 2" in broken
    assert client.post("/dpo/verify").status_code == 400  # no CSRF token


def test_the_dpo_downloads_the_package_an_auditor_verifies(
    client: FlaskClient, make_api: Callable[..., ApiClient], clean_db: Engine, rules: Rules
) -> None:
    with Session(clean_db) as session:
        make_subscriber(session, rules)
    dpo = make_api("audit:read")
    assert client.get("/dpo/package").status_code == 302  # signed out: to the login
    sign_in(client, dpo.client_id, dpo.client_secret)
    response = client.get("/dpo/package")
    assert response.headers["Content-Disposition"] == (
        'attachment; filename="audit-package.ndjson"'
    )
    lines = [json.loads(line) for line in response.get_data(as_text=True).splitlines()]
    assert {line.get("type") for line in lines} >= {"catalog", "event", "trailer"}


def test_the_rights_log_lists_overdue_requests_first(
    client: FlaskClient, make_api: Callable[..., ApiClient], clean_db: Engine, rules: Rules
) -> None:
    now = datetime.now(UTC)
    with Session(clean_db) as session:
        subject_id = make_subscriber(session, rules)
        rights.add(session, subject_id, "access", received_at=now, answered_at=now)
        rights.add(session, subject_id, "download", received_at=now - timedelta(days=2))
        late = rights.add(session, subject_id, "erasure", received_at=now - timedelta(days=60))
        session.commit()
        late_id = late.id
    with Session(clean_db) as session:
        found = rights.log(session, now=now)
        assert [(r.row.kind, r.is_overdue) for r in found] == [
            ("erasure", True),
            ("download", False),
            ("access", False),
        ]
        assert found[0].row.id == late_id
    sign_in_dpo(client, make_api)
    page = client.get("/dpo").get_data(as_text=True)
    assert "1 overdue" in page
    rows = page[page.index('id="rights-log"') :]
    assert rows.index("erasure") < rows.index("download") < rows.index("access")


def test_the_record_of_processing_draws_the_data_map_with_declared_systems(
    client: FlaskClient, make_api: Callable[..., ApiClient]
) -> None:
    sign_in_dpo(client, make_api)
    page = client.get("/dpo").get_data(as_text=True)
    assert 'aria-labelledby="deployment-map-title deployment-map-desc"' in page
    assert "<title>Email address → Shop CRM (webhook receiver" in page
    assert "Newsletter tool (integration: checks consent before each send)" in page
    assert '<html lang="en">' in page
    assert "<script" not in page
    assert "style=" not in page


@pytest.mark.parametrize(
    ("lang", "words"),
    [
        ("de", ("Datenschutzbeauftragte", "Webhook-Empfänger", "Importe", "Betroffenenanfragen")),
        ("es", ("Delegado de protección de datos", "Receptores de webhooks", "Importaciones")),
        ("it", ("Responsabile della protezione dei dati", "Destinatari dei webhook")),
    ],
)
def test_the_dpo_pages_speak_the_language_their_lang_says(
    client: FlaskClient, make_api: Callable[..., ApiClient], lang: str, words: tuple[str, ...]
) -> None:
    login = client.get(f"/dpo/login?lang={lang}").get_data(as_text=True)
    assert f'<html lang="{lang}">' in login
    assert "Sign in with the client id" not in login
    dpo = make_api("audit:read")
    sign_in(client, dpo.client_id, dpo.client_secret)
    page = client.get(f"/dpo?lang={lang}").get_data(as_text=True)
    assert f'<html lang="{lang}">' in page
    for word in words:
        assert word in page
    for english in ("Webhook receivers", "Search the audit trail", "Rights requests", "No import"):
        assert english not in page
    assert (
        client.get("/dpo", headers={"Accept-Language": lang})
        .get_data(as_text=True)
        .count(f'<html lang="{lang}">')
        == 1
    )
