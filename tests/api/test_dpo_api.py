"""The DPO's /v1 routes: checkpoints, the package, the public key, rights requests, evidence."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from app.config import Settings
from app.domain import proof
from app.domain.identifiers import identifier
from app.domain.rules import Rules
from app.domain.vocabulary import IdentifierKind
from app.models import OutboxMessage, SubscriptionRequest
from app.services.consent import notices
from app.services.optin import confirmation, subscriptions
from tests.conftest import ApiClient
from tests.factories import make_act, make_subscriber
from tests.forgeries import rewrite_from


def subscribe(clean_db: Engine, rules: Rules, email: str = "ada@example.org") -> str:
    with Session(clean_db) as session:
        return make_subscriber(session, rules, email=email)


def test_the_public_key_is_served_without_auth_as_a_jwk_set(api: ApiClient) -> None:
    response = api.http.get("/.well-known/jwks.json")
    assert response.status_code == 200
    assert response.mimetype == "application/jwk-set+json"
    (key,) = response.get_json()["keys"]
    assert key["kty"] == "EC"
    assert "d" not in key


def test_a_checkpoint_on_demand_is_stored_as_a_signed_event(
    api: ApiClient, clean_db: Engine, rules: Rules
) -> None:
    subscribe(clean_db, rules)
    response = api.post("/v1/audit/checkpoints")
    assert response.status_code == 201
    made = response.get_json()
    keys = proof.key_set(api.http.get("/.well-known/jwks.json").get_json())
    claims = proof.open_signed(made["jws"], keys)
    assert claims is not None
    assert (claims["seq"], claims["hash"]) == (made["signed_seq"], made["signed_hash"])
    assert made["seq"] == made["signed_seq"] + 1
    listed = api.get("/v1/audit/checkpoints").get_json()["checkpoints"]
    assert [c["seq"] for c in listed] == [made["seq"]]
    assert api.get("/v1/audit/verify").get_json()["ok"] is True


def test_the_package_streams_and_verifies_with_the_served_key(
    api: ApiClient, clean_db: Engine, rules: Rules
) -> None:
    subscribe(clean_db, rules)
    api.post("/v1/audit/checkpoints")
    subscribe(clean_db, rules, "bob@example.org")
    response = api.get("/v1/audit/package")
    assert response.status_code == 200
    assert response.mimetype == "application/x-ndjson"
    keys = proof.key_set(api.http.get("/.well-known/jwks.json").get_json())
    report = proof.verify_package(response.get_data(as_text=True).splitlines(), keys)
    assert report.is_ok, report
    assert report.complete


def test_a_package_filtered_by_subject_holds_only_that_subject(
    api: ApiClient, clean_db: Engine, rules: Rules
) -> None:
    ada = subscribe(clean_db, rules)
    subscribe(clean_db, rules, "bob@example.org")
    response = api.get(f"/v1/audit/package?subject_id={ada}")
    records = [json.loads(line) for line in response.get_data(as_text=True).splitlines()]
    events = [r for r in records if r["type"] == "event"]
    assert events
    assert {e["subject_id"] for e in events} == {ada}
    assert records[0]["complete"] is False
    keys = proof.key_set(api.http.get("/.well-known/jwks.json").get_json())
    assert proof.verify_package([json.dumps(r) for r in records], keys).is_ok


def test_the_package_needs_audit_read(make_api: Callable[..., ApiClient]) -> None:
    reader = make_api("consent:read")
    assert reader.get("/v1/audit/package").status_code == 403
    assert reader.post("/v1/audit/checkpoints").status_code == 403


def test_bad_package_filters_are_422_problems(api: ApiClient) -> None:
    response = api.get("/v1/audit/package?since=yesterday")
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"


def test_rights_requests_are_logged_answered_and_listed_when_overdue(
    api: ApiClient, clean_db: Engine, rules: Rules
) -> None:
    subject_id = subscribe(clean_db, rules)
    old = (datetime.now(UTC) - timedelta(days=40)).isoformat()
    late = api.post(
        "/v1/rights-requests",
        json={"subject_id": subject_id, "kind": "access", "received_at": old, "channel": "email"},
    )
    assert late.status_code == 201
    api.post("/v1/rights-requests", json={"subject_id": subject_id, "kind": "erasure"})
    overdue = api.get("/v1/rights-requests?overdue=true").get_json()["rights_requests"]
    assert [r["id"] for r in overdue] == [late.get_json()["id"]]
    answered = api.post(f"/v1/rights-requests/{late.get_json()['id']}/answer")
    assert answered.status_code == 200
    assert answered.get_json()["answered_at"] is not None
    assert api.get("/v1/rights-requests?overdue=true").get_json()["rights_requests"] == []
    again = api.post(f"/v1/rights-requests/{late.get_json()['id']}/answer")
    assert again.status_code == 409


def test_a_rights_request_of_an_unknown_kind_is_a_422_problem(api: ApiClient) -> None:
    response = api.post(
        "/v1/rights-requests",
        json={"subject_id": "6a0b8f8e-3f3c-4a43-9d44-0d5a1f0c9e11", "kind": "rectify"},
    )
    assert response.status_code == 422


def test_export_and_erasure_are_logged_as_answered_rights_requests(
    api: ApiClient, clean_db: Engine, rules: Rules
) -> None:
    subject_id = subscribe(clean_db, rules)
    exported = api.get(f"/v1/subjects/{subject_id}/export").get_json()
    assert [r["kind"] for r in exported["rights_requests"]] == ["access"]
    assert api.delete(f"/v1/subjects/{subject_id}").status_code == 200
    logged = api.get("/v1/rights-requests").get_json()["rights_requests"]
    assert sorted(r["kind"] for r in logged) == ["access", "erasure"]
    assert all(r["answered_at"] == r["received_at"] for r in logged)


def test_double_opt_in_evidence_names_request_mail_and_confirmation(
    api: ApiClient, clean_db: Engine, rules: Rules
) -> None:
    now = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
    with Session(clean_db) as session:
        notice = notices.publish(
            session,
            key="marketing-consent",
            version="2026-11-01",
            locale="en",
            title="Consent to marketing messages",
            text="We would like to send you our newsletter.",
        )
        requested = subscriptions.request(
            session,
            rules,
            subscriptions.OptIn(
                identifier(IdentifierKind.EMAIL, "ada@example.org"), "email", ["newsletter"]
            ),
            make_act(source="footer-form", notice_version="2026-11-01"),
            now=now,
        )
        assert requested.request is not None
        request_id, notice_sha256 = requested.request.id, notice.sha256
        session.add(
            OutboxMessage(
                id="8d3c1bde-6a55-4c1b-9d5e-1f6f2a8f1a01",
                subject_id=requested.subject_id,
                message_id="<confirm-1@consent-center.test>",
                to_address="ada@example.org",
                template="confirm",
                template_version="1",
                template_sha256="ab" * 32,
                locale="en",
                mail_subject="Please confirm",
                created_at=now,
                status="sent",
                attempts=1,
                next_attempt_at=now,
                sent_at=now + timedelta(seconds=3),
            )
        )
        row = session.get(SubscriptionRequest, request_id)
        assert row is not None
        row.message_id = "<confirm-1@consent-center.test>"
        session.commit()
        confirmation.confirm_request(
            session,
            rules,
            request_id,
            make_act(actor="subject", ip="203.0.113.9", user_agent="Mail browser"),
            now=now + timedelta(minutes=5),
        )
    response = api.get(f"/v1/subjects/{requested.subject_id}/evidence/double-opt-in")
    assert response.status_code == 200
    (record,) = response.get_json()["requests"]
    assert record["request"]["requested_at"].startswith("2026-03-02T10:00:00")
    assert record["request"]["ip"] == "198.51.100.7"
    assert record["request"]["source"] == "footer-form"
    assert record["request"]["event_seqs"]
    assert record["request"]["notice"]["text"] == "We would like to send you our newsletter."
    assert record["request"]["notice"]["sha256"] == notice_sha256
    assert record["mail"]["message_id"] == "<confirm-1@consent-center.test>"
    assert record["mail"]["template_sha256"] == "ab" * 32
    assert record["mail"]["sent_at"].startswith("2026-03-02T10:00:03")
    assert record["confirmation"]["ip"] == "203.0.113.9"
    assert record["confirmation"]["user_agent"] == "Mail browser"
    assert record["confirmation"]["confirmed_at"].startswith("2026-03-02T10:05:00")


def test_double_opt_in_evidence_of_a_subject_without_requests_is_404(
    api: ApiClient, clean_db: Engine, rules: Rules
) -> None:
    response = api.get("/v1/subjects/6a0b8f8e-3f3c-4a43-9d44-0d5a1f0c9e11/evidence/double-opt-in")
    assert response.status_code == 404


def test_the_signing_key_is_made_once_and_readable_only_by_its_owner(
    api: ApiClient, settings: Settings
) -> None:
    first = api.http.get("/.well-known/jwks.json").get_json()
    assert settings.audit_signing_key_path is not None
    assert settings.audit_signing_key_path.stat().st_mode & 0o777 == 0o600
    assert api.http.get("/.well-known/jwks.json").get_json() == first


def test_verify_reads_what_the_check_reads_and_names_the_state_row(
    api: ApiClient, clean_db: Engine, rules: Rules
) -> None:
    subscribe(clean_db, rules)
    api.post("/v1/audit/checkpoints")
    clean = api.get("/v1/audit/verify").get_json()
    assert clean["ok"] is True
    assert clean["checked"]["checkpoints"] == 1
    with Session(clean_db) as session:
        session.execute(text("UPDATE consent_state SET status = 'withdrawn'"))
        session.commit()
    forged = api.get("/v1/audit/verify").get_json()
    assert (forged["ok"], forged["record"]) == (False, "state")
    assert forged["first_bad_seq"] is not None
    assert forged["state"]["channel"] == "email"


def test_verify_checks_checkpoint_signatures_and_notice_texts(
    api: ApiClient, clean_db: Engine, rules: Rules
) -> None:
    subscribe(clean_db, rules)
    assert api.post("/v1/audit/checkpoints").status_code == 201
    subscribe(clean_db, rules, "bob@example.org")
    with Session(clean_db) as session:
        rewrite_from(session, 2, source="forged")
    forged = api.get("/v1/audit/verify").get_json()
    assert (forged["ok"], forged["record"]) == (False, "checkpoint")
    with Session(clean_db) as session:
        notices.publish(
            session, key="k", version="v9", locale="en", title="t", text="The original text."
        )
        session.execute(text("UPDATE notice_versions SET text = 'Changed.' WHERE version = 'v9'"))
        session.commit()
    changed = api.get("/v1/audit/verify").get_json()
    assert (changed["ok"], changed["record"]) == (False, "notice")
    assert changed["notice"] == {"key": "k", "version": "v9", "locale": "en"}
