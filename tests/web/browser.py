"""What the browser tests share: Debian's Chromium, their skip mark, and the app served live."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from flask import Flask
from playwright.sync_api import Browser, Page, sync_playwright
from werkzeug.serving import make_server

from tests.smtp import free_port

CHROMIUM = Path("/usr/bin/chromium")
# A headless run on a shared machine: no sandbox, GPU, background traffic or first-run work.
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

# A module of browser tests sets `pytestmark = BROWSER`.
BROWSER = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists() and not os.environ.get("CI"),
        reason="Debian's chromium is not installed (CI must have it)",
    ),
]


@contextmanager
def chromium() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=ARGS
        )
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def chromium_page(locale: str) -> Iterator[Page]:
    """A page in a fresh Chromium, in this locale, with the browser tests' timeout."""
    with chromium() as browser:
        page = browser.new_page(locale=locale)
        page.set_default_timeout(20_000)
        yield page


@contextmanager
def live(make_app: Callable[..., Flask], **settings: object) -> Iterator[tuple[Flask, str]]:
    """An app with these settings served on a free port of 127.0.0.1, and its base URL."""
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    app = make_app(base_url=base_url, **settings)
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield app, base_url
    finally:
        server.shutdown()
        thread.join(timeout=10)
