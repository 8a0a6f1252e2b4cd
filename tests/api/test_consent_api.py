"""The contract's API: check, subscriptions, preferences, subjects, audit — and their errors."""

from __future__ import annotations

import csv
import io
import json

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from app.models import OutboxMessage
from app.services.consent import notices
from tests.conftest import ApiClient
from tests.smtp import confirm_link
from tests.web.pages import notices_path

# Every check these tests make is answered by both paths and compared (tests/check_parity.py).
pytestmark = pytest.mark.usefixtures("check_parity")

NEWSLETTER = "channel=email&category=newsletter"


@pytest.fixture(autouse=True)
def published(clean_db: Engine) -> None:
    """The shipped notices, as `consent-center db upgrade` publishes them: events cite them."""
    with Session(clean_db) as session:
        notices.publish_file(session, notices_path())


def subscribe(api: ApiClient, email: str = "ada@example.org", **extra: object) -> dict[str, str]:
    body = {
        "email": email,
        "categories": ["newsletter"],
        "channel": "email",
        "locale": "en",
        "source": "signup-form",
        "notice_version": "2026-11-01",
        "ip": "203.0.113.9",
        "user_agent": "Mozilla/5.0",
    } | extra
    response = api.post("/v1/subscriptions", json=body)
    assert response.status_code == 202, response.get_json()
    return response.get_json()  # type: ignore[no-any-return]


def check(api: ApiClient, query: str) -> dict[str, object]:
    response = api.get(f"/v1/consent/check?{query}")
    assert response.status_code == 200, response.get_json()
    return response.get_json()  # type: ignore[no-any-return]


def grant_by_api(api: ApiClient, subject_id: str, channel: str, category: str) -> None:
    """Grant the channel and the category, as an import from a system that did its own opt-in."""
    response = api.patch(
        f"/v1/subjects/{subject_id}/preferences",
        json={
            "changes": [
                {"channel": channel, "status": "granted"},
                {"channel": channel, "category": category, "status": "granted"},
            ],
            "source": "crm",
            "method": "import",
        },
    )
    assert response.status_code == 200, response.get_json()


def test_subscribing_is_pending_until_confirmed(api: ApiClient) -> None:
    created = subscribe(api)
    assert created["status"] == "pending"
    result = check(api, f"email=ada@example.org&{NEWSLETTER}")
    assert result == {
        "allowed": False,
        "reason": "pending_confirmation",
        "subject_id": created["subject_id"],
        "event_id": result["event_id"],
    }


def test_unknown_people_get_no_record_and_transactional_is_always_allowed(api: ApiClient) -> None:
    assert check(api, f"email=nobody@example.org&{NEWSLETTER}")["reason"] == "no_record"
    result = check(api, "email=nobody@example.org&channel=email&category=order_updates")
    assert (result["allowed"], result["reason"]) == (True, "transactional")


def test_patch_grants_and_withdraws_and_the_check_agrees(api: ApiClient) -> None:
    subject_id = subscribe(api, channel="email")["subject_id"]
    grant_by_api(api, subject_id, "sms", "offers")
    assert check(api, f"subject_id={subject_id}&channel=sms&category=offers")["reason"] == "granted"
    response = api.patch(
        f"/v1/subjects/{subject_id}/preferences",
        json={"changes": [{"channel": "sms", "status": "withdrawn"}]},
    )
    body = response.get_json()
    assert response.status_code == 200
    offers = next(
        c for c in body["categories"] if (c["channel"], c["category"]) == ("sms", "offers")
    )
    assert (offers["allowed"], offers["reason"]) == (False, "withdrawn")
    assert (
        check(api, f"subject_id={subject_id}&channel=sms&category=offers")["reason"] == "withdrawn"
    )


def test_unsubscribe_all_is_reported_and_idempotent(api: ApiClient) -> None:
    subject_id = subscribe(api)["subject_id"]
    grant_by_api(api, subject_id, "email", "offers")
    for _ in range(2):
        response = api.post(f"/v1/subjects/{subject_id}/unsubscribe-all")
        assert response.status_code == 200
        assert response.get_json()["unsubscribed_all"] is True
    assert (
        check(api, "email=ada@example.org&channel=email&category=offers")["reason"]
        == "unsubscribed_all"
    )


def test_purposes_are_answered_by_the_same_call(api: ApiClient) -> None:
    subject_id = subscribe(api)["subject_id"]
    assert check(api, "email=ada@example.org&purpose=partner_sharing")["reason"] == "no_record"
    api.patch(
        f"/v1/subjects/{subject_id}/preferences",
        json={"changes": [{"purpose": "partner_sharing", "status": "granted"}]},
    )
    assert check(api, "email=ada@example.org&purpose=partner_sharing")["allowed"] is True


def test_phone_checks_compare_in_e164(api: ApiClient) -> None:
    response = api.post(
        "/v1/subscriptions",
        json={"phone": "+49 151 1234 5678", "channel": "sms", "categories": ["offers"]},
    )
    assert response.status_code == 202
    assert response.get_json()["status"] == "granted"
    assert check(api, "phone=%2B4915112345678&channel=sms&category=offers")["reason"] == "granted"
    assert (
        check(api, "phone=0151-12345678&country=DE&channel=sms&category=offers")["allowed"] is True
    )


def confirm_by_mail(api: ApiClient, engine: Engine) -> None:
    """Follow the confirmation link of the last mail, as the address's owner does."""
    with Session(engine) as session:
        mail = session.scalars(select(OutboxMessage).order_by(OutboxMessage.created_at)).all()[-1]
    link = confirm_link(mail.body_text or "").removeprefix("http://localhost:5000")
    assert api.http.post(link).status_code == 200


def test_batch_check_answers_in_order_with_counts(api: ApiClient, clean_db: Engine) -> None:
    subscribe(api, "a@example.org")
    confirm_by_mail(api, clean_db)
    response = api.post(
        "/v1/consent/check",
        json={
            "channel": "email",
            "category": "newsletter",
            "emails": ["b@example.org", " A@example.org", "a@example.org"],
        },
    )
    body = response.get_json()
    assert response.status_code == 200
    assert [r["email"] for r in body["results"]] == [
        "b@example.org",
        " A@example.org",
        "a@example.org",
    ]
    assert [r["reason"] for r in body["results"]] == ["no_record", "granted", "granted"]
    assert (body["allowed"], body["denied"]) == (2, 1)


def test_a_batch_over_ten_thousand_is_refused(api: ApiClient) -> None:
    emails = [f"u{i}@example.org" for i in range(10_001)]
    response = api.post(
        "/v1/consent/check", json={"channel": "email", "category": "newsletter", "emails": emails}
    )
    assert response.status_code == 422
    assert "emails" in response.get_json()["errors"]


@pytest.mark.parametrize(
    "query",
    [
        "email=a@example.org&channel=fax&category=newsletter",
        "email=a@example.org&channel=email&category=nope",
        "email=a@example.org&channel=sms&category=newsletter",
        "email=not-an-email&channel=email&category=newsletter",
        "channel=email&category=newsletter",
        "email=a@example.org&phone=%2B4915112345678&channel=email&category=newsletter",
        "email=a@example.org&channel=email",
        "email=a@example.org&channel=email&category=newsletter&purpose=personalization",
        "email=a@example.org&channel=email&category=newsletter&surprise=1",
        "phone=12&channel=sms&category=offers",
    ],
)
def test_bad_check_queries_are_422_problems(api: ApiClient, query: str) -> None:
    response = api.get(f"/v1/consent/check?{query}")
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    assert body["status"] == 422
    assert body["title"]
    assert body["detail"]


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        ("{not json", "application/json", 400),
        ("email=a@example.org", "application/x-www-form-urlencoded", 415),
        (
            json.dumps({"email": "a@example.org", "categories": ["newsletter"], "extra": 1}),
            "application/json",
            422,
        ),
        (
            json.dumps({"email": "a@example.org", "categories": ["order_updates"]}),
            "application/json",
            422,
        ),
        (json.dumps({"email": "a@example.org", "categories": []}), "application/json", 422),
        (json.dumps([1, 2]), "application/json", 422),
        ("[" * 100_000 + "]" * 100_000, "application/json", 400),
    ],
)
def test_bad_bodies_are_clear_problems_never_500(
    api: ApiClient, body: str, content_type: str, status: int
) -> None:
    response = api.post("/v1/subscriptions", data=body, content_type=content_type)
    assert response.status_code == status
    assert response.mimetype == "application/problem+json"


def test_an_oversized_body_is_a_413_problem(api: ApiClient) -> None:
    response = api.post(
        "/v1/subscriptions", data="x" * (3 * 1024 * 1024), content_type="application/json"
    )
    assert response.status_code == 413
    assert response.mimetype == "application/problem+json"


def test_a_wrong_method_is_a_405_problem(api: ApiClient) -> None:
    response = api.http.put("/v1/consent/check", headers=api.headers)
    assert response.status_code == 405
    assert response.mimetype == "application/problem+json"
    assert "GET" in response.headers["Allow"]


def test_unknown_subjects_are_404_problems(api: ApiClient) -> None:
    missing = "00000000-0000-4000-8000-000000000000"
    assert api.get(f"/v1/subjects/{missing}/preferences").status_code == 404
    assert api.get("/v1/subjects?email=nobody@example.org").status_code == 404
    response = api.get("/v1/subjects/not-a-uuid/preferences")
    assert response.status_code == 404
    assert response.mimetype == "application/problem+json"


def test_subject_lookup_and_export_hold_what_is_held(api: ApiClient) -> None:
    subject_id = subscribe(api, " Ada@Example.org ")["subject_id"]
    found = api.get("/v1/subjects?email=ada@example.org").get_json()
    assert found["subject_id"] == subject_id
    export = api.get(f"/v1/subjects/{subject_id}/export").get_json()
    assert export["identifiers"][0] == {
        "id": export["identifiers"][0]["id"],
        "kind": "email",
        "value": "ada@example.org",
        "confirmed_at": None,
        "added_at": export["identifiers"][0]["added_at"],
        "source": "signup-form",
    }
    assert export["events"][0]["evidence"]["ip"] == "203.0.113.9"
    assert {e["action"] for e in export["events"]} == {"request"}
    assert export["preferences"]["subject_id"] == subject_id


def test_the_export_lists_a_country_estimated_from_the_ip_apart_from_a_given_one(
    api: ApiClient,
) -> None:
    # 8.8.8.8 is a public address registered in the United States; data only, nothing contacted.
    estimated = subscribe(api, "est@example.org", ip="8.8.8.8")["subject_id"]
    export = api.get(f"/v1/subjects/{estimated}/export").get_json()
    assert export["country"] is None
    (derived,) = export["derived"]
    assert (derived["key"], derived["value"], derived["is_estimated"], derived["source"]) == (
        "estimated_country",
        "US",
        True,
        "ip_address",
    )
    given = subscribe(api, "given@example.org", ip="8.8.8.8", country="DE")["subject_id"]
    export = api.get(f"/v1/subjects/{given}/export").get_json()
    assert (export["country"], export["derived"]) == ("DE", [])


def test_erasure_suppresses_and_leaves_no_personal_data_in_exports(api: ApiClient) -> None:
    subject_id = subscribe(api, "gone@example.org")["subject_id"]
    response = api.delete(f"/v1/subjects/{subject_id}")
    assert response.status_code == 200
    assert response.get_json()["identifiers_suppressed"] == 1
    assert check(api, f"email=GONE@example.org&{NEWSLETTER}")["reason"] == "suppressed"
    assert check(api, f"subject_id={subject_id}&{NEWSLETTER}")["reason"] == "suppressed"
    assert api.get(f"/v1/subjects/{subject_id}/preferences").status_code == 410
    for fmt in ("ndjson", "csv"):
        exported = api.get(f"/v1/audit/export?format={fmt}").get_data(as_text=True)
        assert "gone@example.org" not in exported
        assert "203.0.113.9" not in exported
    assert api.get("/v1/audit/verify").get_json()["ok"] is True
    resubscribed = subscribe(api, "gone@example.org", country="US")
    assert resubscribed["status"] == "pending"


def test_audit_events_page_in_seq_order(api: ApiClient) -> None:
    published = len(api.get("/v1/notices").get_json()["notices"])
    for n in range(3):
        subscribe(api, f"p{n}@example.org")
    first = api.get(f"/v1/audit/events?after={published}&limit=4").get_json()
    assert [e["seq"] - published for e in first["events"]] == [1, 2, 3, 4]
    assert first["next_after"] == published + 4
    rest = api.get(f"/v1/audit/events?after={first['next_after']}&limit=100").get_json()
    assert rest["events"][0]["seq"] == published + 5
    assert rest["next_after"] is None
    event = first["events"][0]
    for field in (
        "seq",
        "id",
        "occurred_at",
        "subject_id",
        "channel",
        "category",
        "action",
        "status",
        "source",
        "actor",
        "notice_version",
        "prev_hash",
        "hash",
    ):
        assert field in event
    assert event["actor"] == f"client:{api.client_id}"


def test_audit_export_streams_ndjson_and_csv(api: ApiClient) -> None:
    subscribe(api)
    ndjson = api.get("/v1/audit/export?format=ndjson")
    assert ndjson.mimetype == "application/x-ndjson"
    lines = [json.loads(line) for line in ndjson.get_data(as_text=True).splitlines()]
    assert [e["seq"] for e in lines] == list(range(1, len(lines) + 1))
    rows = list(
        csv.DictReader(io.StringIO(api.get("/v1/audit/export?format=csv").get_data(as_text=True)))
    )
    assert [int(r["seq"]) for r in rows] == [e["seq"] for e in lines]
    assert rows[0]["hash"] == lines[0]["hash"]


def test_audit_verify_reports_the_chain(api: ApiClient) -> None:
    subscribe(api)
    body = api.get("/v1/audit/verify").get_json()
    assert body["ok"] is True
    assert body["first_bad_seq"] is None
    assert body["events_checked"] >= 2


def test_health_needs_no_auth(api: ApiClient) -> None:
    assert api.http.get("/healthz").status_code == 200
    ready = api.http.get("/readyz")
    assert ready.status_code == 200
    assert ready.get_json()["database"] == "ok"


def test_a_batch_refuses_an_entry_that_is_not_a_string(api: ApiClient) -> None:
    response = api.post(
        "/v1/consent/check",
        json={"channel": "email", "category": "newsletter", "emails": ["a@example.org", 7]},
    )
    assert response.status_code == 422
    assert response.get_json()["errors"]["emails"] == {"1": ["Not a string."]}


def test_a_batch_answers_an_invalid_address_in_place(api: ApiClient) -> None:
    emails = ["a@example.org", "nope", "x@bad..example.org", "jose\u0301@bu\u0308cher.de"]
    response = api.post(
        "/v1/consent/check", json={"channel": "email", "category": "newsletter", "emails": emails}
    )
    assert response.status_code == 200
    body = response.get_json()
    assert [(r["email"], r["reason"]) for r in body["results"]] == [
        ("a@example.org", "no_record"),
        ("nope", "invalid_identifier"),
        ("x@bad..example.org", "invalid_identifier"),
        ("jose\u0301@bu\u0308cher.de", "no_record"),  # NFD: the same form the single check takes
    ]
    assert body["denied"] == 4
    assert not any(r["allowed"] for r in body["results"])


@pytest.mark.parametrize("formula", ['=HYPERLINK("http://x")', "+1+1", "-2+3", "@SUM(A1)"])
def test_the_csv_export_neutralises_cells_a_spreadsheet_would_run(
    api: ApiClient, formula: str
) -> None:
    response = api.post(
        "/v1/subscriptions",
        json={
            "email": "ada@example.org",
            "categories": ["newsletter"],
            "source": formula,
            "user_agent": formula,
        },
    )
    assert response.status_code == 202
    text = api.get("/v1/audit/export?format=csv").get_data(as_text=True)
    rows = list(csv.DictReader(io.StringIO(text)))
    subscribed = [row for row in rows if row["subject_id"]]  # not the system's own events
    assert subscribed
    for row in subscribed:
        assert row["source"] == "'" + formula
    for row in rows:
        for cell in row.values():
            assert not cell.startswith(("=", "+", "-", "@")), cell
    # The NDJSON export keeps the exact value: it is data, not a spreadsheet.
    ndjson = api.get("/v1/audit/export?format=ndjson").get_data(as_text=True)
    events = [json.loads(line) for line in ndjson.splitlines()]
    assert {e["source"] for e in events if e["subject_id"]} == {formula}
