"""Double opt-in cannot be skipped, and an event cites only wording that was published."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from app.models import ConsentEvent, OutboxMessage
from app.services.consent import notices
from tests.conftest import ApiClient
from tests.smtp import confirm_link
from tests.web.pages import notices_path

GRANT = {
    "changes": [
        {"channel": "email", "status": "granted"},
        {"channel": "email", "category": "newsletter", "status": "granted"},
    ]
}


def check(api: ApiClient, category: str = "newsletter") -> str:
    query = f"email=hans@example.de&channel=email&category={category}"
    return str(api.get(f"/v1/consent/check?{query}").get_json()["reason"])


def subscribe_german(api: ApiClient) -> str:
    body = {"email": "hans@example.de", "categories": ["newsletter"], "country": "DE"}
    response = api.post("/v1/subscriptions", json=body)
    assert response.status_code == 202
    assert response.get_json()["status"] == "pending"
    return str(response.get_json()["subject_id"])


def channel_status(body: dict[str, Any], channel: str = "email") -> Any:
    return next(c["status"] for c in body["channels"] if c["channel"] == channel)


def reason_of(body: dict[str, Any], category: str) -> Any:
    return next(
        c["reason"]
        for c in body["categories"]
        if (c["channel"], c["category"]) == ("email", category)
    )


def test_a_patch_cannot_grant_an_address_awaiting_confirmation(
    api: ApiClient, clean_db: Engine
) -> None:
    subject_id = subscribe_german(api)
    response = api.patch(f"/v1/subjects/{subject_id}/preferences", json=GRANT)
    assert response.status_code == 200
    body = response.get_json()
    assert channel_status(body) == "pending"
    assert reason_of(body, "newsletter") == "pending_confirmation"
    assert check(api) == "pending_confirmation"


def test_only_the_addresss_confirmation_grants_what_a_patch_left_pending(
    api: ApiClient, clean_db: Engine
) -> None:
    subject_id = subscribe_german(api)
    offers = {"changes": [{"channel": "email", "category": "offers", "status": "granted"}]}
    body = api.patch(f"/v1/subjects/{subject_id}/preferences", json=offers).get_json()
    assert reason_of(body, "offers") == "pending_confirmation"
    with Session(clean_db) as session:
        mail = session.scalars(select(OutboxMessage)).one()
    link = confirm_link(mail.body_text or "").removeprefix("http://localhost:5000")
    assert api.http.post(link).status_code == 200
    assert (check(api), check(api, "offers")) == ("granted", "granted")


def test_a_patch_for_an_address_never_confirmed_waits_for_confirmation(api: ApiClient) -> None:
    body = {"phone": "+4915112345678", "categories": ["offers"], "channel": "sms"}
    subject_id = api.post("/v1/subscriptions", json=body).get_json()["subject_id"]
    response = api.patch(f"/v1/subjects/{subject_id}/preferences", json=GRANT)
    assert channel_status(response.get_json()) == "pending"


def test_an_unpublished_notice_version_is_a_422_everywhere(
    api: ApiClient, clean_db: Engine
) -> None:
    subject_id = subscribe_german(api)
    with Session(clean_db) as session:
        before = session.query(ConsentEvent).count()
    cited = {"notice_version": "never-published"}
    answers = [
        api.patch(f"/v1/subjects/{subject_id}/preferences", json=GRANT | cited),
        api.post(
            "/v1/subscriptions", json={"email": "x@example.org", "categories": ["offers"]} | cited
        ),
        api.post(f"/v1/subjects/{subject_id}/unsubscribe-all", json=cited),
    ]
    for answer in answers:
        assert answer.status_code == 422, answer.get_json()
        assert answer.mimetype == "application/problem+json"
        assert "notice_version" in answer.get_json()["errors"]
    with Session(clean_db) as session:
        assert session.query(ConsentEvent).count() == before


def test_a_published_notice_version_is_cited_with_its_hash(
    api: ApiClient, clean_db: Engine
) -> None:
    with Session(clean_db) as session:
        notices.publish_file(session, notices_path())
    body = {"email": "x@example.org", "categories": ["offers"], "notice_version": "2026-11-01"}
    assert api.post("/v1/subscriptions", json=body).status_code == 202
    with Session(clean_db) as session:
        cited = session.scalars(
            select(ConsentEvent).where(ConsentEvent.notice_version == "2026-11-01")
        ).first()
    assert cited is not None
    assert cited.notice_sha256 is not None
