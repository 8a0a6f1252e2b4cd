"""The /subscribe page and the /confirm pages, through the Flask test client."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from app import worker
from app.config import PACKAGE_DATA
from app.models import ConsentEvent, Evidence, OutboxMessage, SubscriptionRequest
from app.services.consent import notices
from tests.conftest import ApiClient
from tests.smtp import Inbox, confirm_link, free_port, smtp_server

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
def published(clean_db: Engine) -> Engine:
    with Session(clean_db) as session:
        notices.publish_file(session, PACKAGE_DATA / "notices.yaml")
    return clean_db


def csrf_of(client: FlaskClient, url: str) -> str:
    found = CSRF.search(client.get(url).get_data(as_text=True))
    assert found is not None
    return found.group(1)


def submit(
    client: FlaskClient,
    email: str = "ada@example.org",
    categories: tuple[str, ...] = ("newsletter",),
    **extra: str,
) -> tuple[int, str, str]:
    form = {
        "csrf_token": csrf_of(client, "/subscribe"),
        "email": email,
        "categories": list(categories),
        "notice_version": "2026-11-01",
        "website": "",
    } | extra
    response = client.post("/subscribe", data=form)
    page = client.get(response.headers["Location"]) if response.status_code == 303 else response
    return response.status_code, response.headers.get("Location", ""), page.get_data(as_text=True)


def count(engine: Engine, model: type[object]) -> int:
    with Session(engine) as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def mails(engine: Engine) -> list[OutboxMessage]:
    with Session(engine) as session:
        return list(session.scalars(select(OutboxMessage).order_by(OutboxMessage.created_at)))


def token_of(engine: Engine, index: int = 0) -> str:
    return confirm_link(mails(engine)[index].body_text or "").rpartition("/")[2]


def check(api: ApiClient, email: str = "ada@example.org") -> str:
    response = api.get(f"/v1/consent/check?email={email}&channel=email&category=newsletter")
    return str(response.get_json()["reason"])


def test_the_form_shows_the_notice_and_unchecked_boxes(
    published: Engine, client: FlaskClient
) -> None:
    page = client.get("/subscribe?lang=en").get_data(as_text=True)
    assert "Consent to marketing messages" in page
    assert "Example Shop GmbH, Musterstraße 1" in page
    assert "Version 2026-11-01" in page
    boxes = re.findall(r'<input type="checkbox"[^>]*>', page)
    assert len(boxes) == 3
    assert not any("checked" in box for box in boxes)
    assert 'value="account_security"' not in page
    assert 'class="hp"' in page
    assert "style=" not in page.split('class="hp"')[1].split("</div>")[0]
    assert 'name="csrf_token"' in page


def test_the_form_speaks_the_visitors_language(published: Engine, client: FlaskClient) -> None:
    german = client.get("/subscribe", headers={"Accept-Language": "de-DE,de;q=0.9"})
    spanish = client.get("/subscribe?lang=es").get_data(as_text=True)
    assert "Einwilligung in Werbenachrichten" in german.get_data(as_text=True)
    assert "E-Mail-Adresse" in german.get_data(as_text=True)
    assert "Suscribirse" in spanish
    assert 'hreflang="it"' in spanish


def test_a_subscription_records_evidence_and_queues_one_mail(
    published: Engine, client: FlaskClient, api: ApiClient
) -> None:
    status, location, page = submit(client, categories=("newsletter", "offers"))
    assert status == 303
    assert location.startswith("/subscribe/sent")
    assert "Check your inbox" in page
    assert len(mails(published)) == 1
    assert check(api) == "pending_confirmation"
    with Session(published) as session:
        request = session.scalars(select(SubscriptionRequest)).one()
        event = session.scalars(select(ConsentEvent).where(ConsentEvent.channel == "email")).first()
        evidence = session.get(Evidence, request.request_evidence_hash)
    assert event is not None
    assert event.capture_point == "web:/subscribe"
    assert event.method == "form"
    assert event.notice_version == "2026-11-01"
    assert event.notice_sha256
    assert event.locale == "en"
    assert evidence is not None
    assert evidence.ip == "127.0.0.1"
    assert evidence.user_agent
    assert evidence.details == '{"form":"subscribe"}'


def test_the_answer_is_the_same_whether_or_not_the_address_is_known(
    published: Engine, client: FlaskClient, api: ApiClient
) -> None:
    unknown = submit(client, email="new@example.org")
    pending = submit(client, email="new@example.org")
    client.post(
        f"/confirm/{token_of(published)}",
        data={"csrf_token": csrf_of(client, f"/confirm/{token_of(published)}")},
    )
    subscribed = submit(client, email="new@example.org")
    assert unknown == pending == subscribed
    assert len(mails(published)) == 1


def test_a_filled_honeypot_gets_the_same_page_and_nothing_happens(
    published: Engine, client: FlaskClient
) -> None:
    person = submit(client, email="person@example.org")
    bot = submit(client, email="bot-target@example.org", website="http://spam.example")
    assert bot == person
    assert count(published, SubscriptionRequest) == 1
    assert len(mails(published)) == 1


def test_the_form_without_its_csrf_token_is_refused(published: Engine, client: FlaskClient) -> None:
    response = client.post(
        "/subscribe",
        data={
            "email": "ada@example.org",
            "categories": "newsletter",
            "notice_version": "2026-11-01",
        },
    )
    assert response.status_code == 400
    assert count(published, SubscriptionRequest) == 0


def test_a_bad_address_or_no_topic_shows_the_form_again(
    published: Engine, client: FlaskClient
) -> None:
    status, _, page = submit(client, email="not-an-address")
    assert status == 422
    assert "Please enter a valid email address." in page
    status, _, page = submit(client, categories=())
    assert status == 422
    assert "Choose at least one topic." in page
    assert count(published, SubscriptionRequest) == 0


def test_too_many_posts_from_one_address_get_429(
    published: Engine, make_app: Callable[..., Flask]
) -> None:
    client = make_app(ratelimit_enabled=True, public_form_rate="3/minute").test_client()
    answers = [submit(client, email=f"p{n}@example.org")[0] for n in range(5)]
    assert answers == [303, 303, 303, 429, 429]


def test_a_scanners_get_confirms_nothing_and_the_post_does(
    published: Engine, client: FlaskClient, api: ApiClient
) -> None:
    submit(client)
    token = token_of(published)
    scanner = client.application.test_client()
    page = scanner.get(f"/confirm/{token}", headers={"User-Agent": "LinkScanner/1.0"})
    assert page.status_code == 200
    assert "confirm.js" in page.get_data(as_text=True)
    assert "<script>" not in page.get_data(as_text=True)
    assert check(api) == "pending_confirmation"
    csrf = CSRF.search(page.get_data(as_text=True))
    assert csrf is not None
    confirmed = scanner.post(f"/confirm/{token}", data={"csrf_token": csrf.group(1)})
    again = scanner.post(f"/confirm/{token}", data={"csrf_token": csrf.group(1)})
    assert "Subscription confirmed" in confirmed.get_data(as_text=True)
    assert "Already confirmed" in again.get_data(as_text=True)
    assert check(api) == "granted"
    assert "Already confirmed" in scanner.get(f"/confirm/{token}").get_data(as_text=True)


def test_a_forged_or_garbage_link_gets_a_clear_400_page(
    published: Engine, client: FlaskClient
) -> None:
    submit(client)
    token = token_of(published)
    for bad in (token[:-3] + "xyz", "garbage", "a.b.c"):
        response = client.get(f"/confirm/{bad}")
        assert response.status_code == 400
        assert "not valid" in response.get_data(as_text=True)
    csrf = csrf_of(client, "/subscribe")
    assert client.post("/confirm/garbage", data={"csrf_token": csrf}).status_code == 400
    assert client.post("/confirm/garbage/renew", data={"csrf_token": csrf}).status_code == 400


def test_an_expired_link_offers_a_new_mail_within_the_daily_limit(
    published: Engine, make_app: Callable[..., Flask], api: ApiClient
) -> None:
    client = make_app(confirm_link_ttl=timedelta(seconds=-1)).test_client()
    submit(client)
    token = token_of(published)
    page = client.get(f"/confirm/{token}")
    assert "This link has expired" in page.get_data(as_text=True)
    assert f"/confirm/{token}/renew" in page.get_data(as_text=True)
    csrf = csrf_of(client, f"/confirm/{token}")
    post = client.post(f"/confirm/{token}", data={"csrf_token": csrf})
    assert "This link has expired" in post.get_data(as_text=True)
    renewed = client.post(f"/confirm/{token}/renew", data={"csrf_token": csrf})
    assert "a new confirmation link is on its way" in renewed.get_data(as_text=True)
    assert len(mails(published)) == 1  # the first mail went out less than 24 h ago
    assert check(api) == "pending_confirmation"


def test_a_tampered_topic_or_notice_is_refused_and_nothing_recorded(
    published: Engine, client: FlaskClient
) -> None:
    status, _, page = submit(client, categories=("bogus",))
    assert status == 422
    assert "Something went wrong" in page
    status, _, page = submit(client, notice_version="1999-01-01")
    assert status == 422
    assert count(published, SubscriptionRequest) == 0
    assert mails(published) == []


def test_the_confirm_page_speaks_the_requests_language(
    published: Engine, client: FlaskClient
) -> None:
    client.get("/subscribe?lang=it")
    form = {
        "csrf_token": csrf_of(client, "/subscribe?lang=it"),
        "email": "ada@example.org",
        "categories": ["newsletter"],
        "notice_version": "2026-11-01",
    }
    assert client.post("/subscribe?lang=it", data=form).status_code == 303
    token = token_of(published)
    english_browser = {"Accept-Language": "en-GB,en;q=0.9"}
    page = client.get(f"/confirm/{token}", headers=english_browser).get_data(as_text=True)
    assert "Conferma la tua iscrizione" in page
    csrf = CSRF.search(page)
    assert csrf is not None
    done = client.post(
        f"/confirm/{token}", data={"csrf_token": csrf.group(1)}, headers=english_browser
    )
    assert "Iscrizione confermata" in done.get_data(as_text=True)


def test_the_confirmation_mail_comes_from_the_brand_and_the_pages_wear_it(
    published: Engine, make_app: Callable[..., Flask]
) -> None:
    inbox, port = Inbox(), free_port()
    app = make_app(
        brand_name="Acme Outdoor",
        brand_colour="#1d4d2b",
        mail_from="Consent Center <news@acme.example>",
        smtp_host="127.0.0.1",
        smtp_port=port,
    )
    client = app.test_client()
    page = client.get("/subscribe").get_data(as_text=True)
    assert '<img src="/static/brand/logo.svg" alt="" width="32" height="32"> Acme Outdoor' in page
    assert "<title>Subscribe · Acme Outdoor</title>" in page
    assert '<a href="/privacy-notice">Privacy notice</a>' in page
    assert "--accent: #1d4d2b;" in client.get("/brand.css").get_data(as_text=True)
    assert client.get("/privacy-notice?lang=de").status_code == 200
    csrf = csrf_of(client, "/subscribe")
    client.post(
        "/subscribe",
        data={
            "email": "ada@example.org",
            "categories": "newsletter",
            "csrf_token": csrf,
            "notice_version": "2026-11-01",
        },
    )
    with smtp_server(inbox, port):
        assert worker.deliver_once(published, app.extensions["settings"]).sent == 1
    (message,) = inbox.messages
    assert message["From"] == "Acme Outdoor <news@acme.example>"


def test_the_confirmation_page_without_script_says_to_press_the_button(
    published: Engine, client: FlaskClient
) -> None:
    submit(client)
    page = client.get(f"/confirm/{token_of(published)}?lang=es").get_data(as_text=True)
    assert '<p id="press-to-confirm">Pulsa el botón de abajo' in page
    # The "confirming" line is for the script that submits; without script it stays hidden.
    assert '<p id="confirming" role="status" hidden>' in page


def test_a_plain_post_to_the_confirm_link_confirms_without_cookie_or_form_token(
    published: Engine, app: Flask, api: ApiClient
) -> None:
    """The token in the URL is the proof: a capability URL needs no second one."""
    submit(app.test_client())
    token = token_of(published)
    landing_page = app.test_client(use_cookies=False)
    confirmed = landing_page.post(f"/confirm/{token}")
    assert confirmed.status_code == 200
    assert "Subscription confirmed" in confirmed.get_data(as_text=True)
    assert check(api) == "granted"


def test_every_other_form_keeps_its_csrf_check(published: Engine, client: FlaskClient) -> None:
    submit(client)
    token = token_of(published)
    assert client.post(f"/confirm/{token}/renew").status_code == 400
    assert client.post("/preferences", data={"email": "ada@example.org"}).status_code == 400
