"""/docs in Debian's Chromium: Swagger UI renders every operation under the app's CSP, and
nothing is fetched from another origin."""

from __future__ import annotations

from playwright.sync_api import Browser, ConsoleMessage, Request

from tests.web.test_preference_browser import Site, browser, pytestmark, site

__all__ = ["browser", "pytestmark", "site"]  # the shared Chromium, live server and skip mark


def test_docs_page_renders_the_operations_without_a_policy_violation(
    browser: Browser, site: Site
) -> None:
    page = browser.new_page()
    page.set_default_timeout(15_000)
    problems: list[str] = []
    elsewhere: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            problems.append(message.text)

    def on_request(request: Request) -> None:
        if not request.url.startswith(site.base_url):
            elsewhere.append(request.url)

    page.on("console", on_console)
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on("request", on_request)
    try:
        page.goto(f"{site.base_url}/docs")
        page.locator(".opblock").first.wait_for()

        assert page.locator(".info .title").inner_text().startswith("consent-center API")
        summaries = page.locator(".opblock-summary-path").all_inner_texts()
        assert "/v1/consent/check" in [s.replace("\u200b", "") for s in summaries]
        assert page.locator(".opblock").count() >= 28
        check = page.locator(".opblock-get", has_text="/v1/consent/check").first
        check.locator(".opblock-summary").click()
        assert check.locator(".opblock-description-wrapper").inner_text().count("suppressed")
    finally:
        page.close()

    assert problems == []
    assert elsewhere == []
