"""The preference pages as a person uses them, in Debian's Chromium driven by Playwright."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from flask import Flask
from playwright.sync_api import Browser, Page, ViewportSize, expect
from sqlalchemy import Engine

from app.domain.rules import Rules
from tests.conftest import ApiClient
from tests.web.browser import BROWSER, chromium, live
from tests.web.pages import preference_token, subscriber

SCREENSHOTS = Path(__file__).parent.parent.parent / "docs" / "screenshots"
PHONE: ViewportSize = {"width": 360, "height": 740}
DESKTOP: ViewportSize = {"width": 1280, "height": 900}

pytestmark = BROWSER


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


@dataclass
class Site:
    app: Flask
    base_url: str


@pytest.fixture
def site(make_app: Callable[..., Flask]) -> Iterator[Site]:
    with live(make_app) as (app, base_url):
        yield Site(app, base_url)


def open_preferences(browser: Browser, site: Site, subject_id: str, **context: object) -> Page:
    page = browser.new_page(**context)  # type: ignore[arg-type]
    page.set_default_timeout(10_000)
    page.goto(f"{site.base_url}/p/{preference_token(site.app, subject_id)}")
    return page


def allowed(api: ApiClient, subject_id: str, query: str) -> tuple[bool, str]:
    body = api.get(f"/v1/consent/check?subject_id={subject_id}&{query}").get_json()
    return body["allowed"], body["reason"]


def test_a_person_changes_two_switches_and_the_check_api_agrees(
    browser: Browser, site: Site, api: ApiClient, clean_db: Engine, rules: Rules
) -> None:
    subject_id = subscriber(clean_db, rules)
    page = open_preferences(browser, site, subject_id, viewport=DESKTOP)
    newsletter = page.get_by_role("group", name="Newsletter").get_by_label("Email")
    offers = page.get_by_role("group", name="Offers and discounts").get_by_label("Email")
    expect(newsletter).to_be_checked()
    expect(offers).not_to_be_checked()
    newsletter.uncheck()
    offers.check()
    page.get_by_role("button", name="Save my choices").click()
    expect(page.get_by_role("status")).to_contain_text("Saved.")
    expect(
        page.get_by_role("group", name="Offers and discounts").get_by_label("Email")
    ).to_be_checked()
    assert allowed(api, subject_id, "channel=email&category=offers") == (True, "granted")
    assert allowed(api, subject_id, "channel=email&category=newsletter") == (False, "withdrawn")
    page.close()


def test_unsubscribe_from_everything_in_the_browser(
    browser: Browser, site: Site, api: ApiClient, clean_db: Engine, rules: Rules
) -> None:
    subject_id = subscriber(clean_db, rules)
    page = open_preferences(browser, site, subject_id, viewport=DESKTOP)
    page.get_by_role("button", name="Unsubscribe from everything").click()
    expect(page.get_by_role("status")).to_contain_text("unsubscribed from all marketing")
    assert allowed(api, subject_id, "channel=email&category=newsletter") == (
        False,
        "unsubscribed_all",
    )
    expect(page.get_by_role("group", name="Newsletter").get_by_label("Email")).not_to_be_checked()
    page.close()


def test_on_a_phone_the_page_fits_and_saves(
    browser: Browser, site: Site, api: ApiClient, clean_db: Engine, rules: Rules
) -> None:
    subject_id = subscriber(clean_db, rules)
    page = open_preferences(browser, site, subject_id, viewport=PHONE, is_mobile=True)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    # An email-only subscriber is offered push, not SMS (no number held).
    push = page.get_by_role("group", name="Offers and discounts").get_by_label("Push notifications")
    box = push.bounding_box()
    assert box is not None
    assert box["width"] >= 20  # WCAG 2.5.8: targets of at least 24 CSS px, tile included
    push.check()
    page.get_by_role("button", name="Save my choices").click()
    expect(page.get_by_role("status")).to_contain_text("Saved.")
    assert allowed(api, subject_id, "channel=push&category=offers") == (True, "granted")
    page.close()


def test_keyboard_only_tab_space_and_enter_save_a_choice(
    browser: Browser, site: Site, api: ApiClient, clean_db: Engine, rules: Rules
) -> None:
    subject_id = subscriber(clean_db, rules)
    page = open_preferences(browser, site, subject_id, viewport=DESKTOP)

    def tab_to(element_id: str) -> None:
        for _ in range(80):
            page.keyboard.press("Tab")
            if page.evaluate("document.activeElement.id") == element_id:
                return
        pytest.fail(f"Tab never reached #{element_id}")

    tab_to("pair-push-offers")
    outline = page.evaluate(
        "getComputedStyle(document.activeElement.closest('.pc-switch')).outlineStyle"
    )
    assert outline != "none"  # the focused tile shows where the keyboard is
    page.keyboard.press("Space")
    tab_to("save")
    page.keyboard.press("Enter")
    expect(page.get_by_role("status")).to_contain_text("Saved.")
    assert allowed(api, subject_id, "channel=push&category=offers") == (True, "granted")
    page.close()


def test_the_unsubscribe_page_button_works_in_the_browser(
    browser: Browser, site: Site, api: ApiClient, clean_db: Engine, rules: Rules
) -> None:
    subject_id = subscriber(clean_db, rules)
    links = api.post(f"/v1/subjects/{subject_id}/links", json={"category": "newsletter"})
    path = links.get_json()["unsubscribe_url"].removeprefix("http://localhost:5000")
    page = browser.new_page(viewport=PHONE)
    page.goto(site.base_url + path)
    assert allowed(api, subject_id, "channel=email&category=newsletter")[0] is True
    page.get_by_role("button", name="Unsubscribe").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("You are unsubscribed")
    assert allowed(api, subject_id, "channel=email&category=newsletter") == (False, "withdrawn")
    page.close()


@pytest.mark.parametrize("locale", ["en", "de"])
def test_screenshots_of_the_page_in_two_languages(
    browser: Browser, site: Site, clean_db: Engine, rules: Rules, locale: str, tmp_path: Path
) -> None:
    """Kept in docs/screenshots/ for the README when UPDATE_SCREENSHOTS=1."""
    subject_id = subscriber(clean_db, rules)
    folder = SCREENSHOTS if os.environ.get("UPDATE_SCREENSHOTS") else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    for name, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
        page = browser.new_page(viewport=viewport, locale=locale)
        page.goto(f"{site.base_url}/p/{preference_token(site.app, subject_id)}?lang={locale}")
        heading = "Ihre Einstellungen" if locale == "de" else "Your preferences"
        expect(page.get_by_role("heading", level=1)).to_have_text(heading)
        page.screenshot(path=str(folder / f"preferences-{locale}-{name}.png"), full_page=True)
        page.close()
