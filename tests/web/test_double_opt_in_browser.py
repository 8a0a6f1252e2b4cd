"""End to end: a person subscribes in Chromium, the mail arrives over SMTP, the link confirms.

The app is served over real HTTP (werkzeug) on 127.0.0.1; the mail goes through aiosmtpd.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import pytest
from flask import Flask
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from app.config import PACKAGE_DATA, Settings
from app.models import SubscriptionRequest
from app.services.audit import opt_in_evidence
from app.services.consent import notices
from app.worker import deliver_once
from tests.conftest import ApiClient
from tests.smtp import Inbox, confirm_link, smtp_server, text_of
from tests.web.browser import BROWSER, chromium_page, live

pytestmark = BROWSER


@pytest.fixture
def inbox() -> Iterator[tuple[Inbox, int]]:
    with smtp_server(Inbox()) as running:
        yield running


@pytest.fixture
def served(
    make_app: Callable[..., Flask], clean_db: Engine, inbox: tuple[Inbox, int]
) -> Iterator[Flask]:
    with Session(clean_db) as session:
        notices.publish_file(session, PACKAGE_DATA / "notices.yaml")
    with live(make_app, smtp_host="127.0.0.1", smtp_port=inbox[1]) as (app, _):
        yield app


def test_a_person_subscribes_and_the_link_confirms_without_a_click(
    served: Flask, inbox: tuple[Inbox, int], api: ApiClient, clean_db: Engine
) -> None:
    settings: Settings = served.extensions["settings"]
    with chromium_page("de-DE") as page:
        page.goto(f"{settings.base_url}/subscribe")
        assert page.locator("h1").inner_text() == "Anmelden"
        trap = page.locator("#website").bounding_box()
        assert trap is not None
        assert trap["x"] + trap["width"] <= 0  # the honeypot sits off-screen, by CSS
        page.fill("#email", "Grace.Hopper@example.org")
        page.check("input[value=newsletter]")
        page.check("input[value=product_updates]")
        page.click("button[type=submit]")
        page.wait_for_url("**/subscribe/sent**")

        assert deliver_once(clean_db, settings).sent == 1
        [message] = inbox[0].messages
        link = confirm_link(text_of(message))
        assert link.startswith(settings.base_url + "/confirm/")
        assert "Anmeldung" in str(message["Subject"])

        scanner = served.test_client().get(link.removeprefix(settings.base_url))
        assert scanner.status_code == 200
        assert check(api) == "pending_confirmation"

        page.goto(link)
        page.wait_for_selector("#outcome[data-state=confirmed]")
        assert page.locator("h1").inner_text() == "Anmeldung bestätigt"
    assert check(api) == "granted"
    with Session(clean_db) as session:
        subject_id = session.scalars(select(SubscriptionRequest.subject_id)).one()
        (record,) = opt_in_evidence.record(session, subject_id)["requests"]
    # The proof, as docs/double-opt-in.md shows it.
    print(json.dumps(record, indent=2, ensure_ascii=False, default=str))
    assert record["request"]["user_agent"].startswith("Mozilla/5.0")
    assert record["request"]["capture_point"] == "web:/subscribe"
    assert record["request"]["notice"]["sha256"]
    assert record["mail"]["message_id"] == message["Message-ID"]
    assert record["mail"]["sent_at"] is not None
    assert record["confirmation"]["ip"] == "127.0.0.1"
    assert record["confirmation"]["confirmed_at"] is not None
    assert record["confirmation"]["event_seqs"]


def check(api: ApiClient) -> str:
    response = api.get(
        "/v1/consent/check?email=grace.hopper@example.org&channel=email&category=newsletter"
    )
    return str(response.get_json()["reason"])
