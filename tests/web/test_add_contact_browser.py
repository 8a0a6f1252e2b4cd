"""End to end in Chromium: a person adds an address on their page, it confirms, it is usable.

Real HTTP (werkzeug) on 127.0.0.1, real SMTP (aiosmtpd), the confirmation link taken from the
mail that arrived; the page is audited by axe-core before and after.
"""

from __future__ import annotations

from flask import Flask
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from app.config import Settings
from app.domain.rules import Rules
from app.worker import deliver_once
from tests.conftest import ApiClient
from tests.factories import make_subscriber
from tests.smtp import Inbox, confirm_link, text_of
from tests.web.browser import chromium_page
from tests.web.pages import preference_token
from tests.web.test_accessibility_browser import audit
from tests.web.test_double_opt_in_browser import inbox, pytestmark, served

__all__ = ["inbox", "pytestmark", "served"]  # the fixtures and marks of the sign-up walk


def reason(api: ApiClient, email: str, category: str = "newsletter") -> str:
    query = f"email={email}&channel=email&category={category}"
    return str(api.get(f"/v1/consent/check?{query}").get_json()["reason"])


def test_a_person_adds_an_address_confirms_it_and_it_is_granted(
    served: Flask, inbox: tuple[Inbox, int], api: ApiClient, clean_db: Engine, rules: Rules
) -> None:
    settings: Settings = served.extensions["settings"]
    with Session(clean_db) as session:
        ada = make_subscriber(session, rules, email="ada@example.org")
    with chromium_page("en-GB") as page:
        page.goto(f"{settings.base_url}/p/{preference_token(served, ada)}?lang=en")
        audit(page, "preferences with the add form", "en")
        page.get_by_label("Email address").fill("Ada.Work@Example.org")
        page.click("#add-email-submit")
        page.wait_for_url("**saved=added-email**")
        status = page.get_by_role("status")
        assert "a link to confirm it is on its way" in status.inner_text()
        audit(page, "preferences after adding", "en")
        assert reason(api, "ada.work@example.org") == "pending_confirmation"

        assert deliver_once(clean_db, settings).sent == 1
        [message] = inbox[0].messages
        assert message["To"] == "ada.work@example.org"
        link = confirm_link(text_of(message))
        page.goto(link)
        page.wait_for_selector("#outcome[data-state=confirmed]")
        audit(page, "confirmed", "en")
    assert reason(api, "ada.work@example.org") == "granted"  # what the person had chosen
    assert reason(api, "ada.work@example.org", "offers") == "no_record"  # and no more
