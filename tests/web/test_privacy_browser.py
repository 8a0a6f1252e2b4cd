"""The privacy center in a real Chromium: ask, mail, open, read, download, delete, and after."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import jsonschema_rs
import pytest
from flask import Flask
from playwright._impl._api_structures import SetCookieParam
from playwright.sync_api import Browser
from sqlalchemy.orm import Session

from app.domain.identifiers import identifier
from app.domain.rules import Rules
from app.domain.vocabulary import IdentifierKind, Reason
from app.services.consent import checks
from tests.smtp import Inbox, smtp_server, text_of
from tests.web.browser import BROWSER, chromium, live
from tests.web.privacy_helpers import (
    ACCESS_URL,
    deliver,
    make_person,
    preference_token,
)

ROOT = Path(__file__).parent.parent.parent
SCHEMA = json.loads((ROOT / "app/data/privacy-export.schema.json").read_text())
# UPDATE_SCREENSHOTS=1 refreshes the pictures in docs/; otherwise they go to a temporary folder.
SCREENSHOTS = ROOT / "docs/screenshots"

pytestmark = BROWSER


@pytest.fixture
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


@pytest.fixture
def served(make_app: Callable[..., Flask]) -> Iterator[tuple[Flask, str]]:
    with live(make_app) as served:
        yield served


def test_a_person_sees_downloads_and_deletes_their_data_and_nothing_opens_after(
    browser: Browser, served: tuple[Flask, str], session: Session, rules: Rules, tmp_path: Path
) -> None:
    shots = SCREENSHOTS if os.environ.get("UPDATE_SCREENSHOTS") else tmp_path
    app, base_url = served
    email = "ada.lovelace@example.org"
    # 193.99.144.80 is registered in Germany; only used as data, nothing is contacted.
    subject_id = make_person(session, rules, email=email, country=None, ip="193.99.144.80")
    token = preference_token(app, subject_id)
    context = browser.new_context(accept_downloads=True, locale="en-GB")
    page = context.new_page()

    with smtp_server(Inbox()) as (inbox, smtp_port):
        page.goto(f"{base_url}/privacy/request/{token}")
        assert email not in page.content()
        page.get_by_role("button", name="Email me a secure link").click()
        page.get_by_role("heading", name="Check your mailbox").wait_for()
        assert deliver(session, smtp_port) == 1
        found = ACCESS_URL.search(text_of(inbox.messages[0]))
        assert found, text_of(inbox.messages[0])
        access_url = found.group(0)
        assert access_url.startswith(f"{base_url}/access/")

        page.goto(access_url)
        assert email not in page.content()
        page.get_by_role("button", name="Show my data").click()
        page.get_by_role("heading", name="Your personal data", level=1).wait_for()
        assert page.url == f"{base_url}/privacy"
        assert page.get_by_text(email).count() >= 1
        page.get_by_role("heading", name="Why we hold each kind of data").wait_for()
        assert page.get_by_text("Consent to marketing messages").count() >= 1
        assert page.locator("#held-derived ~ article .tag", has_text="estimated").count() == 1
        assert page.get_by_role("heading", name="When these pages were opened").is_visible()
        (cookie,) = [c for c in context.cookies() if c["name"] == "cc_privacy"]
        assert (cookie["httpOnly"], cookie["sameSite"], cookie["path"]) == (
            True,
            "Strict",
            "/privacy",
        )
        shots.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(shots / "privacy-en.png"), full_page=True)
        page.set_viewport_size({"width": 390, "height": 844})
        page.screenshot(path=str(shots / "privacy-phone-en.png"))
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        page.set_viewport_size({"width": 1280, "height": 900})

        with page.expect_download() as download:
            page.get_by_role("link", name="Download my data (JSON)").click()
        data = json.loads(Path(download.value.path()).read_text())
        jsonschema_rs.validator_for(SCHEMA, validate_formats=True).validate(data)
        assert [i["value"] for i in data["identifiers"]] == [email]

        page.goto(f"{base_url}/privacy/print")
        page.get_by_role("heading", name="Your personal data", level=1).wait_for()
        page.goto(f"{base_url}/privacy")
        page.get_by_role("link", name="Delete my data").click()
        page.get_by_role("heading", name="What we keep, why, and until when").wait_for()
        page.get_by_role("button", name="Delete my data now").click()
        page.get_by_role("heading", name="Your data has been deleted").wait_for()

        assert deliver(session, smtp_port) == 1
        final = inbox.messages[1]
        assert final["To"] == email
        assert "Pseudonymous proof of consent" in text_of(inbox.messages[1])

    answer = checks.check(
        session,
        rules,
        checks.Question(channel="email", category="newsletter"),
        ident=identifier(IdentifierKind.EMAIL, email),
    )
    assert answer.decision.reason is Reason.SUPPRESSED

    page.goto(access_url)
    page.get_by_role("heading", name="This link cannot be used").wait_for()
    stale: SetCookieParam = {
        "name": cookie["name"],
        "value": cookie["value"],
        "domain": "127.0.0.1",
        "path": "/privacy",
    }
    context.add_cookies([stale])
    page.goto(f"{base_url}/privacy")
    page.get_by_role("heading", name="Your secure session has ended").wait_for()
    page.goto(f"{base_url}/privacy/download.json")
    assert email not in page.content()
    page.goto(f"{base_url}/privacy/request/{token}")
    page.get_by_role("heading", name="This link cannot be used").wait_for()
    assert email not in page.content()
    context.close()
