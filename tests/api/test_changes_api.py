"""/v1/changes, /v1/webhooks and /v1/opt-outs through HTTP, with a real bearer token."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from app.domain.rules import Rules
from tests.conftest import ApiClient
from tests.factories import make_subscriber
from tests.feed_reference import old_items, varied_ledger


def test_the_feed_pages_with_a_cursor_that_is_never_null(
    api: ApiClient, session: Session, rules: Rules
) -> None:
    make_subscriber(session, rules, email="feed@example.org")
    first = api.get("/v1/changes?limit=3").get_json()
    rest = api.get(f"/v1/changes?after={first['next_after']}").get_json()
    empty = api.get(f"/v1/changes?after={rest['next_after']}").get_json()

    assert len(first["changes"]) == 3
    assert len(rest["changes"]) == 1
    assert empty == {"changes": [], "next_after": rest["next_after"]}
    item = first["changes"][0]
    assert set(item) == {
        "cursor",
        "occurred_at",
        "subject_id",
        "identifiers",
        "channel",
        "category",
        "purpose",
        "status",
        "action",
    }
    assert item["identifiers"]["email"] == ["feed@example.org"]


def test_the_feed_answers_the_old_bytes_on_every_kind_of_change(
    api: ApiClient, session: Session, clean_db: Engine, rules: Rules, tmp_path: Path
) -> None:
    varied_ledger(session, clean_db, rules, tmp_path)
    after, pages = "0", 0
    while True:
        answer = api.get(f"/v1/changes?after={after}&limit=4")
        items = old_items(session, int(after), 4)
        after = items[-1]["cursor"] if items else after
        page = {"changes": items, "next_after": after}
        old = json.dumps(page, separators=(",", ":"), ensure_ascii=False).encode()
        assert answer.status_code == 200
        assert answer.mimetype == "application/json"
        assert answer.get_data() == old
        if not items:
            break
        pages += 1
    assert pages > 5


@pytest.mark.parametrize("after", ["-1", "abc", "1.5", "99999999999999999999", ""])
def test_a_cursor_that_was_never_given_is_a_422_problem(api: ApiClient, after: str) -> None:
    answer = api.get(f"/v1/changes?after={after}")
    assert answer.status_code == 422
    assert answer.mimetype == "application/problem+json"


def test_the_feed_needs_consent_read(make_api: Callable[..., ApiClient]) -> None:
    assert make_api("webhooks:manage").get("/v1/changes").status_code == 403


def test_webhooks_are_registered_listed_rotated_and_removed(
    make_app: Callable[..., Flask], make_api: Callable[..., ApiClient]
) -> None:
    make_app(webhook_allow_private=True)
    api = make_api("webhooks:manage")
    created = api.post("/v1/webhooks", json={"url": "https://hooks.example.org/in"})
    assert created.status_code == 201, created.get_json()
    body = created.get_json()
    assert body["secret"].startswith("whsec_")
    assert body["events"] == ["consent.changed", "subject.erased"]

    listed = api.get("/v1/webhooks").get_json()["webhooks"]
    assert [w["id"] for w in listed] == [body["id"]]
    assert "secret" not in listed[0]
    rotated = api.post(f"/v1/webhooks/{body['id']}/rotate-secret").get_json()
    assert rotated["secret"] != body["secret"]
    assert rotated["previous_secret_expires_at"]
    assert api.get(f"/v1/webhooks/{body['id']}/deliveries").get_json() == {"deliveries": []}
    assert api.delete(f"/v1/webhooks/{body['id']}").status_code == 204
    assert api.get(f"/v1/webhooks/{body['id']}").status_code == 404


@pytest.mark.parametrize(
    "body",
    [
        {"url": "http://hooks.example.org/in"},
        {"url": "https://10.0.0.8/in"},
        {"url": "https://hooks.example.org/in", "events": ["everything"]},
        {"url": "https://hooks.example.org/in", "secret": "mine"},
        {"url": "not a url"},
    ],
)
def test_a_receiver_that_would_never_be_delivered_to_is_a_422(
    api: ApiClient, body: dict[str, object]
) -> None:
    answer = api.post("/v1/webhooks", json=body)
    assert answer.status_code == 422, answer.get_json()
    assert answer.mimetype == "application/problem+json"


def test_reported_opt_outs_withdraw_with_their_provenance(
    api: ApiClient, session: Session, rules: Rules
) -> None:
    subject_id = make_subscriber(session, rules, email="comp@example.org", categories=["offers"])
    answer = api.post(
        "/v1/opt-outs",
        json={
            "source": "esp-sync",
            "opt_outs": [
                {"email": "comp@example.org", "reason": "complaint", "provider": "postmark"},
                {"email": "COMP@example.org", "reason": "complaint"},
                {"email": "nobody@example.org", "reason": "bounce"},
            ],
        },
    )
    assert answer.status_code == 200, answer.get_json()
    outcomes = [r["outcome"] for r in answer.get_json()["results"]]
    assert outcomes == ["withdrawn", "unchanged", "unknown_subject"]
    check = api.get(
        "/v1/consent/check?email=comp@example.org&channel=email&category=offers"
    ).get_json()
    assert check["allowed"] is False
    assert check["reason"] == "withdrawn"
    events = api.get(f"/v1/audit/events?subject_id={subject_id}").get_json()["events"]
    assert events[-1]["method"] == "provider_report"
    assert events[-1]["details"] == {"provider": "postmark", "reason": "complaint"}


def test_an_opt_out_naming_two_identifiers_is_a_422(api: ApiClient) -> None:
    answer = api.post(
        "/v1/opt-outs",
        json={
            "opt_outs": [{"email": "a@example.org", "phone": "+14155550100", "reason": "bounce"}]
        },
    )
    assert answer.status_code == 422


def test_an_opt_out_for_an_erased_address_answers_suppressed(
    api: ApiClient, session: Session, rules: Rules
) -> None:
    subject_id = make_subscriber(session, rules, email="gone@example.org")
    assert api.delete(f"/v1/subjects/{subject_id}").status_code == 200
    answer = api.post(
        "/v1/opt-outs", json={"opt_outs": [{"email": "gone@example.org", "reason": "complaint"}]}
    )
    assert answer.get_json()["results"][0]["outcome"] == "suppressed"
