"""POST /v1/subjects/{id}/links: signed links and RFC 8058 headers for one message."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from flask import Flask
from sqlalchemy import Engine

from app.domain.rules import Rules
from app.errors import SUBJECT_SUPPRESSED
from app.services.tokens import Purpose
from tests.conftest import ApiClient
from tests.web.pages import subscriber


def test_links_carry_the_base_url_and_the_one_click_headers(
    make_app: Callable[..., Flask],
    make_api: Callable[..., ApiClient],
    clean_db: Engine,
    rules: Rules,
) -> None:
    subject_id = subscriber(clean_db, rules)
    api = make_api("consent:write")
    response = api.post(
        f"/v1/subjects/{subject_id}/links",
        json={"channel": "email", "category": "newsletter", "message_id": "<m1@example.org>"},
    )
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["preference_url"].startswith("http://localhost:5000/p/")
    assert body["unsubscribe_url"].startswith("http://localhost:5000/u/")
    assert body["headers"] == {
        "List-Unsubscribe": f"<{body['unsubscribe_url']}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }


def test_the_unsubscribe_token_names_subject_channel_category_and_message(
    app: Flask, api: ApiClient, clean_db: Engine, rules: Rules
) -> None:
    subject_id = subscriber(clean_db, rules)
    body = api.post(
        f"/v1/subjects/{subject_id}/links",
        json={"category": "newsletter", "message_id": "m-42"},
    ).get_json()
    token = body["unsubscribe_url"].rsplit("/", 1)[1]
    payload = app.extensions["tokens"].open(Purpose.UNSUBSCRIBE, token).payload
    assert payload == {"s": subject_id, "c": "email", "k": "newsletter", "m": "m-42"}


def test_a_body_is_optional_and_then_the_whole_email_channel_is_meant(
    app: Flask, api: ApiClient, clean_db: Engine, rules: Rules
) -> None:
    subject_id = subscriber(clean_db, rules)
    response = api.post(f"/v1/subjects/{subject_id}/links")
    assert response.status_code == 200, response.get_json()
    token = response.get_json()["unsubscribe_url"].rsplit("/", 1)[1]
    assert app.extensions["tokens"].open(Purpose.UNSUBSCRIBE, token).payload == {
        "s": subject_id,
        "c": "email",
    }


def test_unknown_channel_or_category_is_a_422_problem(
    api: ApiClient, clean_db: Engine, rules: Rules
) -> None:
    subject_id = subscriber(clean_db, rules)
    for body in (
        {"channel": "pigeon"},
        {"channel": "email", "category": "gossip"},
        {"channel": "sms", "category": "product_updates"},
        {"channel": "email", "category": "order_updates"},
        {"channel": "email", "colour": "red"},
    ):
        response = api.post(f"/v1/subjects/{subject_id}/links", json=body)
        assert response.status_code == 422, body
        assert response.mimetype == "application/problem+json"


def test_unknown_subject_is_404_and_erased_subject_is_410(
    api: ApiClient, clean_db: Engine, rules: Rules
) -> None:
    missing = api.post(f"/v1/subjects/{uuid.uuid4()}/links")
    assert missing.status_code == 404
    subject_id = subscriber(clean_db, rules)
    assert api.delete(f"/v1/subjects/{subject_id}").status_code == 200
    erased = api.post(f"/v1/subjects/{subject_id}/links")
    assert erased.status_code == 410
    assert erased.mimetype == "application/problem+json"


def test_links_need_the_consent_write_scope(
    make_api: Callable[..., ApiClient], clean_db: Engine, rules: Rules
) -> None:
    subject_id = subscriber(clean_db, rules)
    reader = make_api("consent:read")
    assert reader.post(f"/v1/subjects/{subject_id}/links").status_code == 403
    assert reader.http.post(f"/v1/subjects/{subject_id}/links").status_code == 401


def test_a_suppressed_subject_gets_no_links_but_a_409_problem(
    api: ApiClient, clean_db: Engine, rules: Rules
) -> None:
    # Subscribe, erase, subscribe again by the erased address: the new subject is not erased,
    # but suppressed until that address confirms, so no message may be sent to it.
    erased = subscriber(clean_db, rules, email="back@example.org")
    deleted = api.delete(f"/v1/subjects/{erased}")
    signup = {"email": "back@example.org", "categories": ["newsletter"], "channel": "email"}
    again = api.post("/v1/subscriptions", json=signup)
    assert (deleted.status_code, again.status_code) == (200, 202), again.get_json()
    returning = again.get_json()["subject_id"]
    assert returning != erased
    response = api.post(f"/v1/subjects/{returning}/links", json={"category": "newsletter"})
    assert response.status_code == 409, response.get_json()
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    assert body["type"] == SUBJECT_SUPPRESSED
    assert body["status"] == 409
    assert "suppress" in body["detail"]
    assert "preference_url" not in body
