"""The preference page at /p/<token>: grid, purposes, saving with evidence, GPC, languages."""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from app.domain.rules import Rules
from app.models import Evidence, Subject
from tests.conftest import ApiClient
from tests.web.pages import checkboxes, csrf_token, details, events, preference_token, subscriber


def check(api: ApiClient, subject_id: str, query: str) -> dict[str, object]:
    response = api.get(f"/v1/consent/check?subject_id={subject_id}&{query}")
    assert response.status_code == 200, response.get_json()
    return response.get_json()  # type: ignore[no-any-return]


def open_page(client: FlaskClient, app: Flask, subject_id: str, **headers: str) -> tuple[str, str]:
    path = f"/p/{preference_token(app, subject_id)}"
    response = client.get(path, headers=headers)
    assert response.status_code == 200
    return path, response.get_data(as_text=True)


def test_the_page_shows_only_allowed_pairs_and_transactional_as_always_sent(
    app: Flask, client: FlaskClient, clean_db: Engine, rules: Rules
) -> None:
    subject_id = subscriber(clean_db, rules)
    _, html = open_page(client, app, subject_id)
    boxes = checkboxes(html)
    assert boxes["pair=email:newsletter"] is True
    assert boxes["pair=push:offers"] is False
    # An email-only person is offered no SMS, phone or post: no number or address is held.
    assert not [
        name for name in boxes if name.startswith(("pair=sms:", "pair=phone:", "pair=post:"))
    ]
    assert not [name for name in boxes if "order_updates" in name or "account_" in name]
    offered = rules.catalog.reachable_channels({"email"})
    assert len([name for name in boxes if name.startswith("pair=")]) == len(
        [pair for pair in rules.catalog.marketing_pairs() if pair[0] in offered]
    )
    assert "Always sent" in html
    assert "needed for your orders and your account" in html
    assert boxes["purpose=partner_sharing"] is False
    assert "advertising partners" in html
    assert f'href="/privacy/request/{preference_token(app, subject_id)[:10]}' in html


def test_saving_records_one_event_per_change_with_evidence_and_notice(
    app: Flask, client: FlaskClient, api: ApiClient, clean_db: Engine, rules: Rules
) -> None:
    subject_id = subscriber(clean_db, rules)
    path, html = open_page(client, app, subject_id)
    before = len(events(clean_db, subject_id))
    response = client.post(
        path,
        data={
            "csrf_token": csrf_token(html),
            "locale": "en",
            "notice_version": "2026-11-01",
            "pair": ["email:offers", "push:newsletter"],
            "purpose": ["personalization"],
        },
        headers={"User-Agent": "Firefox/200"},
        environ_base={"REMOTE_ADDR": "203.0.113.5"},
    )
    assert response.status_code == 303
    assert response.headers["Location"].endswith("?saved=1")
    assert check(api, subject_id, "channel=email&category=offers")["allowed"] is True
    assert check(api, subject_id, "channel=email&category=newsletter")["reason"] == "withdrawn"
    assert check(api, subject_id, "channel=push&category=newsletter")["allowed"] is True
    assert check(api, subject_id, "purpose=personalization")["allowed"] is True
    new = events(clean_db, subject_id)[before:]
    topics = {(e.channel, e.category, e.purpose, e.status) for e in new}
    assert topics == {
        ("email", "offers", None, "granted"),
        ("email", "newsletter", None, "withdrawn"),
        ("push", None, None, "granted"),
        ("push", "newsletter", None, "granted"),
        (None, None, "personalization", "granted"),
    }
    assert {(e.method, e.actor, e.notice_version) for e in new} == {
        ("preference_page", "subject", "2026-11-01")
    }
    assert all(e.notice_sha256 for e in new)
    with Session(clean_db) as session:
        evidence = session.get(Evidence, new[0].evidence_hash)
        assert evidence is not None
        assert (evidence.ip, evidence.user_agent) == ("203.0.113.5", "Firefox/200")
    saved = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Saved." in saved


def test_saving_an_untouched_page_writes_nothing(
    app: Flask, client: FlaskClient, clean_db: Engine, rules: Rules
) -> None:
    subject_id = subscriber(clean_db, rules)
    path, html = open_page(client, app, subject_id)
    before = len(events(clean_db, subject_id))
    client.post(path, data={"csrf_token": csrf_token(html), "pair": ["email:newsletter"]})
    assert len(events(clean_db, subject_id)) == before


def test_saving_without_the_csrf_token_is_refused(
    app: Flask, client: FlaskClient, api: ApiClient, clean_db: Engine, rules: Rules
) -> None:
    subject_id = subscriber(clean_db, rules)
    path, _ = open_page(client, app, subject_id)
    response = client.post(path, data={"pair": ["email:offers"]})
    assert response.status_code == 400
    assert check(api, subject_id, "channel=email&category=offers")["allowed"] is False


def test_a_forged_or_unknown_pair_in_the_form_is_not_a_500(
    app: Flask, client: FlaskClient, clean_db: Engine, rules: Rules
) -> None:
    subject_id = subscriber(clean_db, rules)
    path, html = open_page(client, app, subject_id)
    token = csrf_token(html)
    assert client.post(path, data={"csrf_token": token, "pair": "x"}).status_code == 422
    assert client.post(path, data={"csrf_token": token, "locale": "xx"}).status_code == 422


def test_unsubscribe_from_everything(
    app: Flask, client: FlaskClient, api: ApiClient, clean_db: Engine, rules: Rules
) -> None:
    subject_id = subscriber(clean_db, rules)
    path, html = open_page(client, app, subject_id)
    response = client.post(
        f"{path}/unsubscribe-all", data={"csrf_token": csrf_token(html), "locale": "en"}
    )
    assert response.status_code == 303
    assert check(api, subject_id, "channel=email&category=newsletter")["reason"] == (
        "unsubscribed_all"
    )
    last = events(clean_db, subject_id)[-1]
    assert (last.action, last.method, last.actor) == (
        "unsubscribe_all",
        "preference_page",
        "subject",
    )
    assert "unsubscribed from all marketing" in client.get(response.headers["Location"]).get_data(
        as_text=True
    )


def test_gpc_opts_out_of_partner_sharing_once_and_says_so(
    app: Flask, client: FlaskClient, api: ApiClient, clean_db: Engine, rules: Rules
) -> None:
    subject_id = subscriber(clean_db, rules)
    _, html = open_page(client, app, subject_id, **{"Sec-GPC": "1"})
    assert "Your browser sent a Global Privacy Control signal" in html
    assert checkboxes(html)["purpose=partner_sharing"] is False
    assert check(api, subject_id, "purpose=partner_sharing")["reason"] == "withdrawn"
    gpc = [e for e in events(clean_db, subject_id) if e.method == "gpc"]
    assert [(e.purpose, e.status, e.actor) for e in gpc] == [
        ("partner_sharing", "withdrawn", "browser:gpc")
    ]
    assert details(gpc[0]) == {"signal": "Sec-GPC: 1"}
    open_page(client, app, subject_id, **{"Sec-GPC": "1"})
    assert len([e for e in events(clean_db, subject_id) if e.method == "gpc"]) == 1


def test_without_the_signal_nothing_is_recorded(
    app: Flask, client: FlaskClient, clean_db: Engine, rules: Rules
) -> None:
    subject_id = subscriber(clean_db, rules)
    before = len(events(clean_db, subject_id))
    _, html = open_page(client, app, subject_id)
    assert "Your browser sent a Global Privacy Control signal" not in html
    assert len(events(clean_db, subject_id)) == before


def test_gpc_json_is_served(client: FlaskClient) -> None:
    response = client.get("/.well-known/gpc.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert body["gpc"] is True
    assert len(body["lastUpdate"]) == 10


def set_locale(engine: Engine, subject_id: str, locale: str | None) -> None:
    with Session(engine) as session:
        subject = session.get(Subject, subject_id)
        assert subject is not None
        subject.locale = locale
        session.commit()


def test_locale_comes_from_lang_then_cookie_then_subject_then_browser(
    app: Flask, client: FlaskClient, clean_db: Engine, rules: Rules
) -> None:
    subject_id = subscriber(clean_db, rules)
    path = f"/p/{preference_token(app, subject_id)}"
    browser = {"Accept-Language": "es"}
    set_locale(clean_db, subject_id, None)
    assert "Tus preferencias" in client.get(path, headers=browser).get_data(as_text=True)
    set_locale(clean_db, subject_id, "it")
    assert "Le tue preferenze" in client.get(path, headers=browser).get_data(as_text=True)
    switched = client.get(f"{path}?lang=de", headers=browser)
    assert "Ihre Einstellungen" in switched.get_data(as_text=True)
    assert "lang=de" in switched.headers["Set-Cookie"]
    assert "Ihre Einstellungen" in client.get(path, headers=browser).get_data(as_text=True)
    assert '<html lang="de">' in client.get(path).get_data(as_text=True)


def test_pages_carry_no_referrer_and_no_store(
    app: Flask, client: FlaskClient, clean_db: Engine, rules: Rules
) -> None:
    subject_id = subscriber(clean_db, rules)
    response = client.get(f"/p/{preference_token(app, subject_id)}")
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["Cache-Control"] == "no-store"
    assert client.get("/p/forged").headers["Referrer-Policy"] == "no-referrer"


def test_a_forged_expired_or_erased_link_gets_a_clear_page(
    make_app: Callable[..., Flask],
    app: Flask,
    client: FlaskClient,
    api: ApiClient,
    clean_db: Engine,
    rules: Rules,
) -> None:
    from datetime import timedelta

    subject_id = subscriber(clean_db, rules)
    path = f"/p/{preference_token(app, subject_id)}"
    forged = client.get(path + "x")
    assert forged.status_code == 400
    assert 'href="/preferences"' in forged.get_data(as_text=True)
    later = make_app(preference_link_ttl=timedelta(seconds=-1)).test_client()
    assert later.get(path).status_code == 410
    assert api.delete(f"/v1/subjects/{subject_id}").status_code == 200
    assert client.get(path).status_code == 410


def test_a_choice_made_on_the_page_overrides_the_browser_signal(
    app: Flask, client: FlaskClient, api: ApiClient, clean_db: Engine, rules: Rules
) -> None:
    subject_id = subscriber(clean_db, rules)
    gpc = {"Sec-GPC": "1"}
    path, html = open_page(client, app, subject_id, **gpc)
    client.post(
        path,
        data={
            "csrf_token": csrf_token(html),
            "pair": ["email:newsletter"],
            "purpose": ["partner_sharing"],
        },
        headers=gpc,
    )
    _, again = open_page(client, app, subject_id, **gpc)
    assert "so your own choice stands" in again
    assert checkboxes(again)["purpose=partner_sharing"] is True
    assert check(api, subject_id, "purpose=partner_sharing")["allowed"] is True
    assert len([e for e in events(clean_db, subject_id) if e.method == "gpc"]) == 1


def test_an_api_client_cannot_claim_the_preference_page_to_switch_gpc_off(
    app: Flask, client: FlaskClient, api: ApiClient, clean_db: Engine, rules: Rules
) -> None:
    subject_id = subscriber(clean_db, rules)
    grant = {"changes": [{"purpose": "partner_sharing", "status": "granted"}]}
    for method in ("preference_page", "double_opt_in", "one_click_unsubscribe", "gpc"):
        claimed = api.patch(
            f"/v1/subjects/{subject_id}/preferences", json=grant | {"method": method}
        )
        assert claimed.status_code == 422, method
        assert "method" in claimed.get_json()["errors"]
    assert api.patch(f"/v1/subjects/{subject_id}/preferences", json=grant).status_code == 200
    open_page(client, app, subject_id, **{"Sec-GPC": "1"})
    assert check(api, subject_id, "purpose=partner_sharing")["reason"] == "withdrawn"


def test_gpc_yields_only_to_a_choice_the_person_made_on_the_page(
    app: Flask, client: FlaskClient, api: ApiClient, clean_db: Engine, rules: Rules
) -> None:
    subject_id = subscriber(clean_db, rules)
    path, html = open_page(client, app, subject_id)
    client.post(
        path,
        data={
            "csrf_token": csrf_token(html),
            "pair": ["email:newsletter"],
            "purpose": ["partner_sharing"],
        },
    )
    _, html = open_page(client, app, subject_id, **{"Sec-GPC": "1"})
    assert check(api, subject_id, "purpose=partner_sharing")["reason"] == "granted"


def test_a_box_the_page_did_not_offer_is_never_granted(
    app: Flask, client: FlaskClient, api: ApiClient, clean_db: Engine, rules: Rules
) -> None:
    subject_id = subscriber(clean_db, rules)  # email only: no phone number held
    path, html = open_page(client, app, subject_id)
    before = len(events(clean_db, subject_id))
    response = client.post(
        path,
        data={"csrf_token": csrf_token(html), "pair": ["email:newsletter", "sms:offers"]},
    )
    assert response.status_code == 303
    assert check(api, subject_id, "channel=sms&category=offers")["allowed"] is False
    assert len(events(clean_db, subject_id)) == before
