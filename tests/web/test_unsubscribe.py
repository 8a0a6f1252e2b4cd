"""RFC 8058 one-click unsubscribe at /u/<token>: plain HTTP, no cookie, no login."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta

from flask import Flask
from flask.testing import FlaskClient
from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from sqlalchemy import Engine

from app.config import Settings
from app.domain.rules import Rules
from app.services.tokens import Purpose
from tests.conftest import ApiClient
from tests.web.pages import csrf_token, details, events, subscriber

ONE_CLICK = {"List-Unsubscribe": "One-Click"}


def unsubscribe_url(api: ApiClient, subject_id: str, **body: str) -> str:
    response = api.post(f"/v1/subjects/{subject_id}/links", json=body)
    assert response.status_code == 200, response.get_json()
    url: str = response.get_json()["unsubscribe_url"]
    return url.removeprefix("http://localhost:5000")


def newsletter_check(api: ApiClient, subject_id: str) -> dict[str, object]:
    response = api.get(
        f"/v1/consent/check?subject_id={subject_id}&channel=email&category=newsletter"
    )
    return response.get_json()  # type: ignore[no-any-return]


def test_one_click_post_withdraws_at_once_with_the_message_id(
    app: Flask, api: ApiClient, clean_db: Engine, rules: Rules
) -> None:
    subject_id = subscriber(clean_db, rules)
    path = unsubscribe_url(api, subject_id, category="newsletter", message_id="<m1@shop>")
    before = len(events(clean_db, subject_id))
    anonymous = app.test_client(use_cookies=False)
    response = anonymous.post(path, data=ONE_CLICK)
    assert response.status_code == 200
    assert "Location" not in response.headers
    assert "Set-Cookie" not in response.headers
    assert newsletter_check(api, subject_id)["reason"] == "withdrawn"
    (event,) = events(clean_db, subject_id)[before:]
    assert (event.action, event.channel, event.category) == ("withdraw", "email", "newsletter")
    assert (event.method, event.actor) == ("one_click_unsubscribe", "subject")
    assert details(event) == {"message_id": "<m1@shop>"}


def test_one_click_post_is_idempotent(
    app: Flask, api: ApiClient, clean_db: Engine, rules: Rules
) -> None:
    subject_id = subscriber(clean_db, rules)
    path = unsubscribe_url(api, subject_id, category="newsletter")
    anonymous = app.test_client(use_cookies=False)
    assert anonymous.post(path, data=ONE_CLICK).status_code == 200
    count = len(events(clean_db, subject_id))
    again = anonymous.post(path, data=ONE_CLICK)
    assert again.status_code == 200
    assert len(events(clean_db, subject_id)) == count


def test_without_a_category_the_whole_channel_is_withdrawn(
    app: Flask, api: ApiClient, clean_db: Engine, rules: Rules
) -> None:
    subject_id = subscriber(clean_db, rules)
    path = unsubscribe_url(api, subject_id)
    response = app.test_client(use_cookies=False).post(path, data=ONE_CLICK)
    assert response.status_code == 200
    last = events(clean_db, subject_id)[-1]
    assert (last.channel, last.category, last.status) == ("email", None, "withdrawn")
    assert newsletter_check(api, subject_id)["allowed"] is False


def test_get_shows_a_button_and_changes_nothing(
    client: FlaskClient, api: ApiClient, clean_db: Engine, rules: Rules
) -> None:
    subject_id = subscriber(clean_db, rules)
    path = unsubscribe_url(api, subject_id, category="newsletter")
    count = len(events(clean_db, subject_id))
    page = client.get(path)
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'type="submit"' in html
    assert 'href="http://localhost:5000/p/' in html
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert len(events(clean_db, subject_id)) == count
    assert newsletter_check(api, subject_id)["allowed"] is True


def test_the_pages_button_unsubscribes_with_csrf_and_refuses_without(
    client: FlaskClient, api: ApiClient, clean_db: Engine, rules: Rules
) -> None:
    subject_id = subscriber(clean_db, rules)
    path = unsubscribe_url(api, subject_id, category="newsletter")
    html = client.get(path).get_data(as_text=True)
    forged = client.post(path, data={})
    assert forged.status_code == 400
    assert newsletter_check(api, subject_id)["allowed"] is True
    done = client.post(path, data={"csrf_token": csrf_token(html)})
    assert done.status_code == 200
    assert "You are unsubscribed" in done.get_data(as_text=True)
    assert newsletter_check(api, subject_id)["reason"] == "withdrawn"


def test_a_forged_or_expired_link_gets_a_clear_page_not_a_500(
    make_app: Callable[..., Flask], app: Flask, api: ApiClient, clean_db: Engine, rules: Rules
) -> None:
    subject_id = subscriber(clean_db, rules)
    path = unsubscribe_url(api, subject_id, category="newsletter")
    anonymous = app.test_client(use_cookies=False)
    forged = anonymous.post(path[:-3] + "xyz", data=ONE_CLICK)
    assert forged.status_code == 400
    assert "This link does not work" in forged.get_data(as_text=True)
    assert anonymous.get("/u/not-a-token").status_code == 400
    later = make_app(unsubscribe_link_ttl=timedelta(seconds=-1)).test_client(use_cookies=False)
    expired = later.post(path, data=ONE_CLICK)
    assert expired.status_code == 410
    assert "This link has expired" in expired.get_data(as_text=True)
    assert newsletter_check(api, subject_id)["allowed"] is True


def issued_days_ago(settings: Settings, payload: dict[str, str], days: int) -> str:
    """An unsubscribe token signed as the service signs it, but `days` ago."""

    class Backdated(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time()) - days * 24 * 3600

    serializer = URLSafeTimedSerializer(
        settings.secret_key, salt=f"consent-center:{Purpose.UNSUBSCRIBE}", signer=Backdated
    )
    return str(serializer.dumps(payload))


def test_an_unsubscribe_link_still_works_after_sixty_days_and_not_after_ninety(
    app: Flask, api: ApiClient, clean_db: Engine, rules: Rules, settings: Settings
) -> None:
    subject_id = subscriber(clean_db, rules)
    payload = {"s": subject_id, "c": "email", "k": "newsletter"}
    anonymous = app.test_client(use_cookies=False)
    stale = anonymous.post(f"/u/{issued_days_ago(settings, payload, 91)}", data=ONE_CLICK)
    assert stale.status_code == 410
    assert newsletter_check(api, subject_id)["allowed"] is True
    old = anonymous.post(f"/u/{issued_days_ago(settings, payload, 61)}", data=ONE_CLICK)
    assert old.status_code == 200
    assert newsletter_check(api, subject_id)["reason"] == "withdrawn"
