"""The brand's own routes: its stylesheet, its logo, and the privacy notice every page links to."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from flask import Flask
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from app.config import PACKAGE_DATA
from app.services.consent import notices


def test_a_configured_logo_is_served_and_shown_on_every_page(
    make_app: Callable[..., Flask], tmp_path: Path
) -> None:
    logo = tmp_path / "acme.svg"
    logo.write_text('<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"/>')
    client = make_app(brand_logo_path=str(logo), brand_name="Acme").test_client()
    page = client.get("/preferences").get_data(as_text=True)
    assert '<img src="/brand/logo" alt="" width="32" height="32"> Acme' in page
    served = client.get("/brand/logo")
    assert (served.status_code, served.mimetype) == (200, "image/svg+xml")
    assert client.get("/brand.css").mimetype == "text/css"


def test_a_missing_logo_file_is_a_404_page_not_a_500(
    make_app: Callable[..., Flask], tmp_path: Path
) -> None:
    client = make_app(brand_logo_path=str(tmp_path / "gone.png")).test_client()
    assert client.get("/brand/logo").status_code == 404


def test_the_privacy_notice_page_shows_the_published_text_in_the_page_language(
    make_app: Callable[..., Flask], clean_db: Engine
) -> None:
    client = make_app().test_client()
    assert client.get("/privacy-notice").status_code == 404  # nothing published yet
    with Session(clean_db) as session:
        notices.publish_file(session, PACKAGE_DATA / "notices.yaml")
    page = client.get("/privacy-notice?lang=de").get_data(as_text=True)
    assert '<html lang="de">' in page
    assert '<h1 lang="de">Datenschutzhinweise</h1>' in page
    assert "Seite nicht gefunden" in client.get("/nowhere?lang=de").get_data(as_text=True)


def test_a_configured_privacy_notice_url_is_what_every_page_links_to(
    make_app: Callable[..., Flask],
) -> None:
    client = make_app(privacy_notice_url="https://shop.example/privacy").test_client()
    page = client.get("/preferences").get_data(as_text=True)
    assert '<a href="https://shop.example/privacy">Privacy notice</a>' in page
