"""POST /v1/subscriptions queues the confirmation mail with the request, once a day per address."""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from app.models import OutboxMessage, SubscriptionRequest
from tests.conftest import ApiClient
from tests.smtp import confirm_link


def subscribe(api: ApiClient, email: str, **extra: object) -> tuple[int, dict[str, object]]:
    body = {"email": email, "categories": ["newsletter"], "locale": "it", "ip": "203.0.113.5"}
    response = api.post("/v1/subscriptions", json=body | extra)
    return response.status_code, response.get_json()


def test_a_double_opt_in_request_queues_a_mail_in_its_locale(
    api: ApiClient, clean_db: Engine
) -> None:
    status, body = subscribe(api, "Ada@Example.org")
    with Session(clean_db) as session:
        message = session.scalars(select(OutboxMessage)).one()
        request = session.scalars(select(SubscriptionRequest)).one()
    assert status == 202
    assert body["status"] == "pending"
    assert message.locale == "it"
    assert message.to_address == "ada@example.org"
    assert request.message_id == message.message_id
    assert confirm_link(message.body_text or "").startswith("http://localhost:5000/confirm/")


def test_repeated_requests_for_one_address_send_one_mail_a_day(
    api: ApiClient, clean_db: Engine
) -> None:
    answers = [subscribe(api, "bob@example.org") for _ in range(4)]
    with Session(clean_db) as session:
        messages = list(session.scalars(select(OutboxMessage)))
    assert {status for status, _ in answers} == {202}
    assert {str(body["status"]) for _, body in answers} == {"pending"}
    assert len(messages) == 1


def test_single_opt_in_countries_get_no_mail(api: ApiClient, clean_db: Engine) -> None:
    extensions = api.http.application.extensions
    extensions["rules"] = replace(extensions["rules"], single_opt_in_countries=frozenset({"US"}))
    status, body = subscribe(api, "carol@example.org", country="US")
    with Session(clean_db) as session:
        assert session.scalars(select(OutboxMessage)).first() is None
    assert status == 202
    assert body["status"] == "granted"
