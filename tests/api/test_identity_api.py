"""One person, many identifiers, through the API: subscriptions, links, merges, checks, erasure."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine

from tests.api.identity_helpers import confirm_by_mail
from tests.conftest import ApiClient

NEWSLETTER = "channel=email&category=newsletter"
SMS_OFFERS = "channel=sms&category=offers"


def subscribe(api: ApiClient, expect: int = 202, **fields: Any) -> dict[str, Any]:
    body = {"categories": ["newsletter"], "channel": "email", "source": "shop"} | fields
    response = api.post("/v1/subscriptions", json=body)
    assert response.status_code == expect, response.get_json()
    return response.get_json()  # type: ignore[no-any-return]


def check(api: ApiClient, query: str) -> dict[str, Any]:
    response = api.get(f"/v1/consent/check?{query}")
    assert response.status_code == 200, response.get_json()
    return response.get_json()  # type: ignore[no-any-return]


def identifiers(api: ApiClient, subject_id: str) -> list[dict[str, Any]]:
    response = api.get(f"/v1/subjects/{subject_id}/identifiers")
    assert response.status_code == 200, response.get_json()
    return response.get_json()["identifiers"]  # type: ignore[no-any-return]


def actions(api: ApiClient, subject_id: str) -> list[str]:
    events = api.get(f"/v1/audit/events?subject_id={subject_id}&limit=1000").get_json()["events"]
    return [e["action"] for e in events]


def test_a_subscription_with_email_phone_and_external_id_lands_on_one_subject(
    api: ApiClient, clean_db: Engine
) -> None:
    sms = subscribe(
        api,
        channel="sms",
        categories=["offers"],
        phone="+4915112345678",
        email="Ada@Example.org",
        external_id="crm-42",
    )
    later = subscribe(api, email="ada@example.org")
    assert later["subject_id"] == sms["subject_id"]
    confirm_by_mail(api, clean_db, "ada@example.org")
    held = {(i["kind"], i["value"]) for i in identifiers(api, sms["subject_id"])}
    assert held == {
        ("email", "ada@example.org"),
        ("phone", "+4915112345678"),
        ("external_id", "crm-42"),
    }
    for query in ("email=ada@example.org", "phone=%2B4915112345678", "external_id=crm-42"):
        assert check(api, f"{query}&{SMS_OFFERS}")["reason"] == "granted", query
        assert check(api, f"{query}&{NEWSLETTER}")["reason"] == "granted", query
        assert check(api, f"{query}&{NEWSLETTER}")["subject_id"] == sms["subject_id"]


def test_identifiers_of_two_subjects_are_a_409_naming_both(api: ApiClient) -> None:
    first = subscribe(api, email="a@example.org")["subject_id"]
    second = subscribe(api, email="b@example.org", external_id="crm-2")["subject_id"]
    response = api.post(
        "/v1/subscriptions",
        json={"email": "a@example.org", "external_id": "crm-2", "categories": ["newsletter"]},
    )
    body = response.get_json()
    assert response.status_code == 409
    assert response.mimetype == "application/problem+json"
    assert first in body["detail"]
    assert second in body["detail"]
    assert sorted(body["errors"]["subject_ids"]) == sorted([first, second])
    linked = api.post(
        f"/v1/subjects/{first}/identifiers", json={"kind": "external_id", "value": "crm-2"}
    )
    assert linked.status_code == 409
    assert second in linked.get_json()["detail"]


def test_link_list_and_unlink_are_events_with_actor_and_source(api: ApiClient) -> None:
    subject_id = subscribe(api, email="a@example.org")["subject_id"]
    response = api.post(
        f"/v1/subjects/{subject_id}/identifiers",
        json={"kind": "loyalty_number", "value": " L-77 ", "source": "till"},
    )
    assert response.status_code == 201, response.get_json()
    linked = response.get_json()
    assert (linked["kind"], linked["value"], linked["source"]) == ("loyalty_number", "L-77", "till")
    again = api.post(
        f"/v1/subjects/{subject_id}/identifiers", json={"kind": "loyalty_number", "value": "L-77"}
    )
    assert again.status_code == 200
    unknown = api.post(
        f"/v1/subjects/{subject_id}/identifiers", json={"kind": "shoe", "value": "9"}
    )
    assert unknown.status_code == 422
    assert api.delete(f"/v1/subjects/{subject_id}/identifiers/{linked['id']}").status_code == 204
    assert api.delete(f"/v1/subjects/{subject_id}/identifiers/{linked['id']}").status_code == 404
    assert [i["kind"] for i in identifiers(api, subject_id)] == ["email"]
    events = api.get(f"/v1/audit/events?subject_id={subject_id}").get_json()["events"]
    link, unlink = [e for e in events if e["action"].startswith("identifier_")]
    assert (link["action"], link["source"], link["actor"]) == (
        "identifier_linked",
        "till",
        f"client:{api.client_id}",
    )
    assert unlink["action"] == "identifier_unlinked"
    assert "L-77" not in str(events)  # the chain holds no personal data
    assert api.get("/v1/audit/verify").get_json()["ok"] is True


def test_identifier_calls_need_subjects_manage(make_api: Any) -> None:
    reader = make_api("consent:read consent:write")
    subject_id = subscribe(reader, email="a@example.org")["subject_id"]
    assert reader.get(f"/v1/subjects/{subject_id}/identifiers").status_code == 403
    merge = reader.post(f"/v1/subjects/{subject_id}/merge", json={"subject_id": subject_id})
    assert merge.status_code == 403


def test_a_second_address_is_usable_only_after_its_own_confirmation(
    api: ApiClient, clean_db: Engine
) -> None:
    subject_id = subscribe(api, email="home@example.org", external_id="crm-7")["subject_id"]
    confirm_by_mail(api, clean_db, "home@example.org")
    assert check(api, f"email=home@example.org&{NEWSLETTER}")["reason"] == "granted"
    second = subscribe(api, email="work@example.org", external_id="crm-7")
    assert (second["subject_id"], second["status"]) == (subject_id, "pending")
    assert check(api, f"email=work@example.org&{NEWSLETTER}")["reason"] == "pending_confirmation"
    assert check(api, f"email=home@example.org&{NEWSLETTER}")["reason"] == "granted"
    person = check(api, f"external_id=crm-7&{NEWSLETTER}")
    assert (person["allowed"], person["contact"]) == (True, "home@example.org")
    confirm_by_mail(api, clean_db, "work@example.org")
    assert check(api, f"email=work@example.org&{NEWSLETTER}")["reason"] == "granted"
    assert check(api, f"subject_id={subject_id}&{NEWSLETTER}")["contact"] == "work@example.org"


def test_a_person_with_no_confirmed_address_gets_no_contact_and_the_reason(
    api: ApiClient,
) -> None:
    subject_id = subscribe(api, email="new@example.org", external_id="crm-9")["subject_id"]
    answer = check(api, f"external_id=crm-9&{NEWSLETTER}")
    assert answer == {
        "allowed": False,
        "reason": "pending_confirmation",
        "subject_id": subject_id,
        "event_id": answer["event_id"],
        "contact": None,
    }
    by_email = check(api, f"email=new@example.org&{NEWSLETTER}")
    assert "contact" not in by_email


def test_merge_moves_identifiers_and_history_and_the_strictest_choice_stands(
    api: ApiClient, clean_db: Engine
) -> None:
    keep = subscribe(api, email="a@example.org", categories=["newsletter", "offers"])
    confirm_by_mail(api, clean_db, "a@example.org")
    gone = subscribe(api, email="b@example.org", categories=["newsletter", "offers"])
    confirm_by_mail(api, clean_db, "b@example.org")
    withdrawn = api.patch(
        f"/v1/subjects/{gone['subject_id']}/preferences",
        json={"changes": [{"channel": "email", "category": "offers", "status": "withdrawn"}]},
    )
    assert withdrawn.status_code == 200
    response = api.post(
        f"/v1/subjects/{keep['subject_id']}/merge", json={"subject_id": gone["subject_id"]}
    )
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["identifiers_moved"] == 1
    offers = "channel=email&category=offers"
    for query in ("email=a@example.org", "email=b@example.org", f"subject_id={gone['subject_id']}"):
        answer = check(api, f"{query}&{offers}")
        assert (answer["reason"], answer["subject_id"]) == ("withdrawn", keep["subject_id"])
        assert check(api, f"{query}&{NEWSLETTER}")["reason"] == "granted"
    assert {i["value"] for i in identifiers(api, gone["subject_id"])} == {
        "a@example.org",
        "b@example.org",
    }
    exported = api.get(f"/v1/subjects/{keep['subject_id']}/export").get_json()
    assert {e["subject_id"] for e in exported["events"]} == {keep["subject_id"], gone["subject_id"]}
    assert "merge" in actions(api, keep["subject_id"])
    assert "merge" in actions(api, gone["subject_id"])
    # The person chooses again: that stands.
    again = api.patch(
        f"/v1/subjects/{keep['subject_id']}/preferences",
        json={"changes": [{"channel": "email", "category": "offers", "status": "granted"}]},
    )
    assert again.status_code == 200
    assert check(api, f"email=b@example.org&{offers}")["reason"] == "granted"
    # Unlinking after the merge is possible, and audited.
    moved = next(i for i in identifiers(api, keep["subject_id"]) if i["value"] == "b@example.org")
    unlinked = api.delete(f"/v1/subjects/{gone['subject_id']}/identifiers/{moved['id']}")
    assert unlinked.status_code == 204
    assert check(api, f"email=b@example.org&{offers}")["reason"] == "no_record"
    assert actions(api, keep["subject_id"])[-1] == "identifier_unlinked"
    assert api.get("/v1/audit/verify").get_json()["ok"] is True


def test_merging_keeps_an_unsubscribe_all_of_either_subject(
    api: ApiClient, clean_db: Engine
) -> None:
    keep = subscribe(api, email="a@example.org")
    confirm_by_mail(api, clean_db, "a@example.org")
    gone = subscribe(api, email="b@example.org", categories=["offers"])
    confirm_by_mail(api, clean_db, "b@example.org")
    assert api.post(f"/v1/subjects/{keep['subject_id']}/unsubscribe-all").status_code == 200
    merged = api.post(
        f"/v1/subjects/{keep['subject_id']}/merge", json={"subject_id": gone["subject_id"]}
    )
    assert merged.status_code == 200
    assert check(api, "email=b@example.org&channel=email&category=offers")["reason"] == (
        "unsubscribed_all"
    )
    same = api.post(
        f"/v1/subjects/{keep['subject_id']}/merge", json={"subject_id": gone["subject_id"]}
    )
    assert same.status_code == 409


def test_erasure_suppresses_every_identifier_and_each_variant(
    api: ApiClient, clean_db: Engine
) -> None:
    subject_id = subscribe(
        api,
        email="Ada@Example.org",
        phone="+4915112345678",
        external_id="crm-1",
        channel="sms",
        categories=["offers"],
    )["subject_id"]
    erased = api.delete(f"/v1/subjects/{subject_id}")
    assert erased.status_code == 200
    assert erased.get_json()["identifiers_suppressed"] == 3
    for query in (
        "email=%20ADA@example.ORG%20",
        "phone=0151%2012345678&country=DE",
        "external_id=%20crm-1",
    ):
        assert check(api, f"{query}&{SMS_OFFERS}")["reason"] == "suppressed", query
    assert api.get(f"/v1/subjects/{subject_id}/identifiers").status_code == 410
