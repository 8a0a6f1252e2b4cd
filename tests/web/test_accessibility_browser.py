"""Every page in a real Chromium, audited by axe-core: desktop and phone, all four languages.

axe-core is the copy shipped inside the axe-playwright-python package (no CDN). A page passes
with no serious or critical violation. The walk is a person's: sign up, confirm, the
preference and unsubscribe pages, the privacy center, the notice, an error page; and the DPO's.
Keyboard-only use of every form is walked separately.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from axe_playwright_python.sync_playwright import Axe
from flask import Flask
from playwright.sync_api import Browser, Page
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from app.config import PACKAGE_DATA
from app.domain.rules import Rules
from app.models import OutboxMessage, SubjectIdentifier
from app.services.consent import notices
from app.services.delivery import webhooks
from app.services.imports import jobs as imports
from app.services.tokens import Purpose, Tokens
from app.worker import run_import
from tests.api.test_imports_api import row
from tests.conftest import ApiClient
from tests.web.browser import BROWSER, chromium, live
from tests.web.privacy_helpers import access_url_in_outbox, preference_token

ROOT = Path(__file__).parent.parent.parent
SCREENSHOTS = ROOT / "docs/screenshots"
LANGUAGES = ("en", "es", "it", "de")
VIEWPORTS = {
    "desktop": {"viewport": {"width": 1280, "height": 900}},
    "phone": {
        "viewport": {"width": 390, "height": 844},
        "device_scale_factor": 2,
        "is_mobile": True,
        "has_touch": True,
    },
}
CONFIRM_URL = re.compile(r"https?://\S+/confirm/[\w.\-]+")
SERIOUS = {"serious", "critical"}
AXE = Axe()
# Inline links inside running text are exempt from the size (SC 2.5.5 "inline" exception).
SMALL_TARGETS = """() => [...document.querySelectorAll(
      'main a, main button, header a, footer a, .topic-tile, .pc-switch, input[type=email]')]
    .filter(e => e.offsetParent !== null && !e.closest('.hp, .pc-hp'))
    .filter(e => !(e.tagName === 'A' && e.closest('p, li, dd') &&
                   !e.closest('header, footer, nav') && !e.classList.contains('button')))
    .map(e => [e, e.getBoundingClientRect()])
    .filter(([e, r]) => r.height < 44 || r.width < 44)
    .map(([e, r]) => `${e.tagName}.${e.className} ${Math.round(r.width)}x${Math.round(r.height)}`)
"""

pytestmark = BROWSER


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


@pytest.fixture
def served(make_app: Callable[..., Flask], clean_db: Engine) -> Iterator[tuple[Flask, str]]:
    with Session(clean_db) as session:
        notices.publish_file(session, PACKAGE_DATA / "notices.yaml")
    with live(make_app, ratelimit_enabled=False) as served:
        yield served


# The README's pictures, re-taken with UPDATE_SCREENSHOTS=1 (one language and size each).
SHOTS = {
    ("subscribe", "en", "desktop"): "subscribe-en-desktop",
    ("subscribe", "de", "phone"): "subscribe-de-phone",
    ("check your inbox", "en", "desktop"): "subscribe-sent-en",
    ("confirmed", "it", "phone"): "subscribe-confirmed-it-phone",
    ("privacy center", "es", "phone"): "privacy-es-phone",
    ("dpo home", "en", "desktop"): "dpo-en-desktop",
}


def audit(page: Page, name: str, lang: str | None = None) -> None:
    """No serious or critical axe violation, and the page says the language it speaks."""
    size = "phone" if (page.viewport_size or {"width": 1280})["width"] < 600 else "desktop"
    shot = SHOTS.get((name, lang or "", size))
    if shot and os.environ.get("UPDATE_SCREENSHOTS"):
        page.screenshot(path=str(SCREENSHOTS / f"{shot}.png"), full_page=size == "desktop")
    if lang:
        assert page.locator("html").get_attribute("lang") == lang, name
    results: Any = AXE.run(page)
    bad = [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
        for v in results.response["violations"]
        if v["impact"] in SERIOUS
    ]
    assert bad == [], f"{name}: {bad}"


def small_targets(page: Page) -> list[str]:
    """Links, buttons and tiles under 44 px on a side (WCAG 2.2 SC 2.5.5, the AAA size)."""
    found: list[str] = page.evaluate(SMALL_TARGETS)
    return found


def _outbox_link(session: Session, template: str, pattern: re.Pattern[str]) -> str:
    session.rollback()
    body = session.scalars(
        select(OutboxMessage.body_text)
        .where(OutboxMessage.template == template)
        .order_by(OutboxMessage.created_at.desc())
    ).first()
    found = pattern.search(body or "")
    assert found, body
    return found.group(0)


def _subject_id(session: Session) -> str:
    session.rollback()
    return str(session.scalars(select(SubjectIdentifier.subject_id)).one())


@pytest.mark.parametrize("size", list(VIEWPORTS))
@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_page_of_a_person_passes_axe(
    browser: Browser,
    served: tuple[Flask, str],
    session: Session,
    lang: str,
    size: str,
) -> None:
    app, base = served
    context = browser.new_context(locale=lang, **VIEWPORTS[size])  # type: ignore[arg-type]
    page = context.new_page()

    page.goto(f"{base}/subscribe?lang={lang}")
    audit(page, "subscribe", lang)
    if size == "phone":
        assert small_targets(page) == []
    page.fill("#email", "ada@example.org")
    page.check("#topic-newsletter")
    page.locator("#subscribe button[type=submit]").click()
    page.wait_for_url(re.compile(r"/subscribe/sent"))
    audit(page, "check your inbox", lang)

    confirm_url = _outbox_link(session, "confirm", CONFIRM_URL)
    page.route("**/static/confirm.js", lambda route: route.abort())  # the no-script page
    page.goto(confirm_url)
    audit(page, "confirm (no script)", lang)
    assert page.locator("#press-to-confirm").is_visible()
    page.unroute("**/static/confirm.js")
    page.get_by_role("button").last.click()
    page.locator("#outcome[data-state=confirmed]").wait_for()
    audit(page, "confirmed", lang)

    subject_id = _subject_id(session)
    token = preference_token(app, subject_id)
    page.goto(f"{base}/p/{token}?lang={lang}")
    audit(page, "preferences", lang)
    if size == "phone":
        assert small_targets(page) == []
    tokens: Tokens = app.extensions["tokens"]
    unsubscribe = tokens.make(Purpose.UNSUBSCRIBE, {"s": subject_id, "c": "email"})
    page.goto(f"{base}/u/{unsubscribe}?lang={lang}")
    audit(page, "unsubscribe", lang)
    page.goto(f"{base}/preferences?lang={lang}")
    audit(page, "preference link request", lang)

    page.goto(f"{base}/privacy/request/{token}?lang={lang}")
    audit(page, "privacy request", lang)
    with page.expect_navigation():
        page.locator("main form button[type=submit]").click()
    audit(page, "privacy link sent", lang)
    page.goto(access_url_in_outbox(session) + f"?lang={lang}")
    audit(page, "privacy access", lang)
    page.locator("main form button[type=submit]").click()
    page.wait_for_url(re.compile(r"/privacy"))
    page.goto(f"{base}/privacy?lang={lang}")
    audit(page, "privacy center", lang)
    if size == "phone":
        assert small_targets(page) == []
    page.goto(f"{base}/privacy/print?lang={lang}")
    audit(page, "privacy printable", lang)
    page.goto(f"{base}/privacy/delete?lang={lang}")
    audit(page, "privacy delete", lang)

    page.goto(f"{base}/privacy-notice?lang={lang}")
    audit(page, "privacy notice", lang)
    page.goto(f"{base}/no-such-page?lang={lang}")
    audit(page, "error page", lang)
    context.close()


def _dpo_has_imports_and_receivers(session: Session, rules: Rules) -> None:
    """What the DPO page lists: an import with a refused line, a dry run, and two receivers
    (one switched off, one waiting to be sent to)."""
    good = json.dumps(row())
    job = imports.create(
        session, [good, '{"email": "x@example.org"}'], imports.Format.NDJSON, actor="client:crm"
    )
    run_import(session, rules, job.id)
    imports.create(session, [good], imports.Format.NDJSON, actor="client:crm", is_dry_run=True)
    webhooks.register(
        session, "https://erp.example.org/in", ["consent.changed"], actor="t", allow_private=False
    )
    off = webhooks.register(
        session, "https://crm.example.org/in", ["subject.erased"], actor="t", allow_private=False
    )
    off.webhook.disabled_at = datetime.now(UTC)
    off.webhook.disabled_reason = "delivery msg_1 failed 11 times: HTTP 500"
    session.commit()


@pytest.mark.parametrize("size", list(VIEWPORTS))
@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_dpo_page_passes_axe(
    browser: Browser,
    served: tuple[Flask, str],
    make_api: Callable[..., ApiClient],
    session: Session,
    rules: Rules,
    lang: str,
    size: str,
) -> None:
    _, base = served
    _dpo_has_imports_and_receivers(session, rules)
    dpo = make_api("audit:read")
    context = browser.new_context(locale=lang, **VIEWPORTS[size])  # type: ignore[arg-type]
    page = context.new_page()
    page.goto(f"{base}/dpo/login")  # the browser's language, as a DPO arrives
    audit(page, "dpo login", lang)
    page.fill("#client_id", dpo.client_id)
    page.fill("#client_secret", dpo.client_secret)
    page.locator("main form button[type=submit]").click()
    page.wait_for_url(re.compile(r"/dpo$"))
    audit(page, "dpo home", lang)
    assert page.locator("#receivers tbody tr.dpo-overdue").count() == 1  # the disabled one
    assert page.locator("#receivers tbody tr").first.locator("strong").count() == 1
    if size == "phone":  # the stacked tables fit the screen: nothing scrolls sideways
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.locator("#imports-log a").first.click()
    page.locator("#import-errors").wait_for()
    audit(page, "dpo import errors", lang)
    page.goto(f"{base}/dpo?lang={lang}")
    audit(page, "dpo home (?lang=)", lang)
    page.locator("#run-verify").click()
    page.locator("#verify-result").wait_for()
    audit(page, "dpo verification", lang)
    context.close()


def tab_to(page: Page, selector: str) -> None:
    """Press Tab, as a keyboard-only person does, until the element has the focus."""
    for _ in range(80):
        page.keyboard.press("Tab")
        if page.evaluate("s => document.activeElement.matches(s)", selector):
            return
    raise AssertionError(f"Tab never reaches {selector}")


def test_every_form_works_with_the_keyboard_alone(
    browser: Browser,
    served: tuple[Flask, str],
    session: Session,
    make_api: Callable[..., ApiClient],
) -> None:
    app, base = served
    context = browser.new_context(locale="de")
    page = context.new_page()

    page.goto(f"{base}/subscribe")
    tab_to(page, "#email")
    page.keyboard.type("grace@example.org")
    tab_to(page, "#topic-offers")
    page.keyboard.press("Space")
    assert page.is_checked("#topic-offers")
    tab_to(page, "#subscribe button[type=submit]")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/subscribe/sent"))

    page.route("**/static/confirm.js", lambda route: route.abort())
    page.goto(_outbox_link(session, "confirm", CONFIRM_URL))
    tab_to(page, "#confirm-form button")
    page.keyboard.press("Enter")
    page.locator("#outcome[data-state=confirmed]").wait_for()

    token = preference_token(app, _subject_id(session))
    page.goto(f"{base}/p/{token}")
    tab_to(page, "#pair-email-newsletter")
    page.keyboard.press("Space")
    tab_to(page, "#save")
    page.keyboard.press("Enter")
    page.locator(".pc-ok").wait_for()
    assert page.is_checked("#pair-email-newsletter")

    page.goto(f"{base}/privacy/request/{token}")
    tab_to(page, "main form button[type=submit]")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    page.goto(access_url_in_outbox(session))
    tab_to(page, "main form button[type=submit]")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/privacy$"))

    dpo = make_api("audit:read")
    page.goto(f"{base}/dpo/login")
    tab_to(page, "#client_id")
    page.keyboard.type(dpo.client_id)
    page.keyboard.press("Tab")
    page.keyboard.type(dpo.client_secret)
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/dpo$"))
    tab_to(page, "#run-verify")
    page.keyboard.press("Enter")
    page.locator("#verify-result[data-ok=true]").wait_for()
    context.close()
