"""The privacy pages over HTTP: what a forwarded link shows, cookies, single use, languages."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import jsonschema_rs
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.domain.identifiers import identifier
from app.domain.rules import Rules
from app.domain.vocabulary import IdentifierKind
from app.models import AccessLog, AccessSession, OutboxMessage, RightsRequest
from app.services.optin import subscriptions
from tests.factories import make_act
from tests.web.privacy_helpers import access_url_in_outbox, csrf, make_person, preference_token

EMAIL = "ada@example.org"
SCHEMA = json.loads(
    (Path(__file__).parent.parent.parent / "app/data/privacy-export.schema.json").read_text()
)


def open_session(app: Flask, client: FlaskClient, session: Session, subject_id: str) -> str:
    """Ask for access with the preference link, then open the mailed link: the access path."""
    token = preference_token(app, subject_id)
    page = client.get(f"/privacy/request/{token}")
    sent = client.post(f"/privacy/request/{token}", data={"csrf_token": csrf(page.text)})
    assert sent.status_code == 200
    path = urlsplit(access_url_in_outbox(session)).path
    landing = client.get(path)
    opened = client.post(path, data={"csrf_token": csrf(landing.text)})
    assert (opened.status_code, opened.headers["Location"]) == (303, "/privacy")
    return path


def test_a_preference_link_alone_shows_no_personal_data(
    app: Flask, client: FlaskClient, session: Session, rules: Rules
) -> None:
    subject_id = make_person(session, rules, email=EMAIL)
    token = preference_token(app, subject_id)
    page = client.get(f"/privacy/request/{token}")
    assert page.status_code == 200
    assert "Email me a secure link" in page.text
    sent = client.post(f"/privacy/request/{token}", data={"csrf_token": csrf(page.text)})
    for url in ("/privacy", "/privacy/print", "/privacy/download.json", "/privacy/delete"):
        response = client.get(url)
        assert response.status_code == 401, url
        assert EMAIL not in response.text
        assert "198.51.100.7" not in response.text
    assert EMAIL not in page.text + sent.text
    assert session.scalars(select(AccessLog)).all() == []


def test_asking_for_access_needs_the_form_token(
    app: Flask, client: FlaskClient, session: Session, rules: Rules
) -> None:
    token = preference_token(app, make_person(session, rules))
    assert client.post(f"/privacy/request/{token}").status_code == 400


def test_asking_for_access_over_and_over_from_one_address_is_refused(
    make_app: Callable[..., Flask], session: Session, rules: Rules
) -> None:
    app = make_app(ratelimit_enabled=True)
    client = app.test_client()
    token = preference_token(app, make_person(session, rules))
    form = {"csrf_token": csrf(client.get(f"/privacy/request/{token}").text)}
    codes = [client.post(f"/privacy/request/{token}", data=form).status_code for _ in range(7)]
    # The budget every mail-sending form shares, per IP (PUBLIC_FORM_RATE, 5 a minute).
    assert codes == [200] * 5 + [429] * 2
    session.rollback()
    assert session.scalars(select(OutboxMessage)).all()[0].template == "access_link"
    assert len(session.scalars(select(OutboxMessage)).all()) == 1


def test_the_session_cookie_is_httponly_strict_and_scoped_to_the_privacy_pages(
    make_app: Callable[..., Flask], session: Session, rules: Rules
) -> None:
    app = make_app(base_url="https://privacy.example")
    client = app.test_client()
    subject_id = make_person(session, rules, email=EMAIL)
    token = preference_token(app, subject_id)
    page = client.get(f"/privacy/request/{token}")
    client.post(f"/privacy/request/{token}", data={"csrf_token": csrf(page.text)})
    path = urlsplit(access_url_in_outbox(session)).path
    opened = client.post(path, data={"csrf_token": csrf(client.get(path).text)})
    cookie = opened.headers["Set-Cookie"]
    for part in ("cc_privacy=", "HttpOnly", "SameSite=Strict", "Path=/privacy", "Secure"):
        assert part in cookie


def test_an_idle_session_opens_nothing(
    make_app: Callable[..., Flask], session: Session, rules: Rules
) -> None:
    app = make_app(access_session_idle=timedelta(0))
    client = app.test_client()
    open_session(app, client, session, make_person(session, rules, email=EMAIL))
    ended = client.get("/privacy")
    assert ended.status_code == 401
    assert EMAIL not in ended.text
    assert "Your secure session has ended" in ended.text


def test_an_idle_session_is_gone_from_the_database_once_its_page_said_so(
    make_app: Callable[..., Flask], session: Session, rules: Rules
) -> None:
    app = make_app(access_session_idle=timedelta(0))
    client = app.test_client()
    open_session(app, client, session, make_person(session, rules, email=EMAIL))
    assert client.get("/privacy").status_code == 401
    session.rollback()
    assert session.scalars(select(AccessSession)).all() == []


def test_an_access_link_works_once_and_a_forged_one_gets_a_clear_page(
    app: Flask, client: FlaskClient, session: Session, rules: Rules
) -> None:
    path = open_session(app, client, session, make_person(session, rules))
    assert client.get("/privacy").status_code == 200
    again = client.get(path)
    assert again.status_code == 410
    assert "already used" in again.text
    reused = client.post(path, data={"csrf_token": csrf(client.get("/privacy").text)})
    assert reused.status_code == 410
    forged = client.get("/access/not-a-real-token")
    assert forged.status_code == 400
    assert "not valid" in forged.text
    assert client.get("/privacy/request/not-a-real-token").status_code == 400


def test_the_page_shows_identifiers_history_wording_derived_data_and_the_record(
    app: Flask, client: FlaskClient, session: Session, rules: Rules
) -> None:
    open_session(app, client, session, make_person(session, rules, email=EMAIL))
    page = client.get("/privacy")
    assert page.status_code == 200
    assert page.headers["Cache-Control"] == "no-store"
    for text in (
        EMAIL,
        "Consent to marketing messages",  # the notice title of the version shown
        "Example Shop GmbH, Musterstraße 1",  # its wording, verbatim
        "198.51.100.7",  # evidence of the sign-up
        "Secure link opened",  # the access log
        "Why we hold each kind of data",
        "A legal obligation (GDPR Art. 6(1)(c))",
        "Email delivery provider (processor, EU)",
        "All connections to this service are encrypted (TLS).",
    ):
        assert text in page.text, text
    # A country given at sign-up is shown as given; nothing was estimated from the IP.
    assert '<dd>Germany <span class="note">as given</span></dd>' in page.text
    assert "we have not worked out anything about you" in page.text
    assert "Times are shown in Europe/Berlin." in page.text
    # The value exchange beside each choice.
    assert "<td>Discount codes and sales that only subscribers get.</td>" in page.text


def test_a_country_estimated_from_the_ip_is_shown_and_downloaded_as_estimated(
    app: Flask, client: FlaskClient, session: Session, rules: Rules
) -> None:
    # 193.99.144.80 is a public address registered in Germany (heise.de); only used as data.
    subject_id = make_person(session, rules, email=EMAIL, country=None, ip="193.99.144.80")
    open_session(app, client, session, subject_id)
    page = client.get("/privacy?lang=de")
    assert '<h3>Land (geschätzt) <span class="tag">geschätzt</span></h3>' in page.text
    assert "Deutschland" in page.text
    assert "Ihrer IP-Adresse bei der Anmeldung" in page.text
    assert "Zeiten in Europe/Berlin" in page.text
    data = client.get("/privacy/download.json").get_json()
    jsonschema_rs.validator_for(SCHEMA, validate_formats=True).validate(data)
    (estimate,) = data["derived"]
    assert estimate["key"] == "estimated_country"
    assert (estimate["value"], estimate["is_estimated"], estimate["source"]) == (
        "DE",
        True,
        "ip_address",
    )
    assert "geoip2fast" in estimate["method"]
    assert data["country"] is None  # nothing was given
    session.rollback()


def test_history_shows_evidence_once_per_capture(
    app: Flask, client: FlaskClient, session: Session, rules: Rules
) -> None:
    open_session(app, client, session, make_person(session, rules, email=EMAIL))
    page = client.get("/privacy").text
    # Sign-up and confirmation each wrote one event per topic and the channel (6 events), but
    # each was one act from one browser: two evidence lines, not six.
    assert page.count('class="entry-title"') == 6
    assert page.count('<p class="evidence">') == 2
    assert page.count("198.51.100.7") == 2
    assert page.count("Mozilla/5.0 (phone)") == 1


def test_the_download_is_an_attachment_that_matches_its_schema(
    app: Flask, client: FlaskClient, session: Session, rules: Rules
) -> None:
    subject_id = make_person(session, rules, email=EMAIL)
    open_session(app, client, session, subject_id)
    response = client.get("/privacy/download.json")
    assert response.headers["Content-Disposition"] == 'attachment; filename="my-data.json"'
    data = response.get_json()
    jsonschema_rs.validator_for(SCHEMA, validate_formats=True).validate(data)
    assert data["subject_id"] == subject_id
    assert data["derived"] == []  # the country was given, not worked out
    assert data["country"] == "DE"
    assert {n["version"] for n in data["notices"]} == {"2026-11-01"}
    session.rollback()
    kinds = session.scalars(select(RightsRequest.kind).order_by(RightsRequest.kind)).all()
    assert kinds == ["access", "download"]


def test_the_printable_page_carries_print_styles_and_the_full_wording(
    app: Flask, client: FlaskClient, session: Session, rules: Rules
) -> None:
    open_session(app, client, session, make_person(session, rules))
    page = client.get("/privacy/print")
    assert page.status_code == 200
    assert "<details open>" in page.text
    with client.get("/static/privacy.css") as css:
        assert "@media print" in css.get_data(as_text=True)


def test_deleting_asks_first_then_says_what_was_kept_and_closes_the_session(
    app: Flask, client: FlaskClient, session: Session, rules: Rules
) -> None:
    subject_id = make_person(session, rules, email=EMAIL)
    open_session(app, client, session, subject_id)
    confirm = client.get("/privacy/delete")
    assert "What we keep, why, and until when" in confirm.text
    assert EMAIL in confirm.text
    assert "Phone number" not in confirm.text  # only what this person has
    done = client.post("/privacy/delete", data={"csrf_token": csrf(confirm.text)})
    assert done.status_code == 200
    assert "Your data has been deleted" in done.text
    assert "Pseudonymous proof of consent" in done.text
    assert "cc_privacy=;" in done.headers["Set-Cookie"]
    assert client.get("/privacy").status_code == 401
    gone = client.get(f"/privacy/request/{preference_token(app, subject_id)}")
    assert gone.status_code == 410
    assert EMAIL not in gone.text


@pytest.mark.parametrize(
    ("lang", "heading", "record", "logged"),
    [
        ("en", "Your personal data", "Why we hold each kind of data", "Secure link opened"),
        (
            "es",
            "Tus datos personales",
            "Por qué guardamos cada tipo de dato",
            "Enlace seguro abierto",
        ),
        (
            "it",
            "I tuoi dati personali",
            "Perché conserviamo ogni tipo di dato",
            "Link sicuro aperto",
        ),
        (
            "de",
            "Ihre personenbezogenen Daten",
            "Warum wir welche Daten speichern",
            "Sicherer Link geöffnet",
        ),
    ],
)
def test_the_pages_speak_four_languages(
    app: Flask,
    client: FlaskClient,
    session: Session,
    rules: Rules,
    lang: str,
    heading: str,
    record: str,
    logged: str,
) -> None:
    subject_id = make_person(session, rules)
    request_page = client.get(f"/privacy/request/{preference_token(app, subject_id)}?lang={lang}")
    assert f'<html lang="{lang}">' in request_page.text
    open_session(app, client, session, subject_id)
    client.get("/privacy?lang=en")  # words must not stick to the first language rendered
    page = client.get(f"/privacy?lang={lang}")
    assert f"<h1>{heading}</h1>" in page.text
    assert record in page.text
    assert logged in page.text
    delete = client.get(f"/privacy/delete?lang={lang}")
    assert delete.status_code == 200


def test_a_person_without_an_email_gets_a_logged_request_not_a_401(
    client: FlaskClient, app: Flask, session: Session, rules: Rules
) -> None:
    phone = identifier(IdentifierKind.PHONE, "+4915112345678")
    requested = subscriptions.request(
        session, rules, subscriptions.OptIn(phone, "sms", ["offers"]), make_act()
    )
    token = preference_token(app, requested.subject_id)
    page = client.get(f"/privacy/request/{token}")
    assert page.status_code == 200
    answer = client.post(f"/privacy/request/{token}", data={"csrf_token": csrf(page.text)})
    assert answer.status_code == 200
    assert "Your request is logged" in answer.text
    assert "data protection officer" in answer.text
    session.rollback()
    [logged] = session.scalars(
        select(RightsRequest).where(RightsRequest.subject_id == requested.subject_id)
    ).all()
    assert (logged.kind, logged.channel, logged.answered_at) == ("access", "web", None)
    assert logged.due_at.date().isoformat() in answer.text
    assert session.scalars(select(OutboxMessage)).all() == []  # no mail to an address not held


def test_the_data_map_says_per_datum_origin_consent_wording_receivers_and_retention(
    app: Flask, client: FlaskClient, session: Session, rules: Rules
) -> None:
    open_session(app, client, session, make_person(session, rules, email=EMAIL))
    page = client.get("/privacy").text
    section = page[page.index('id="held-map"') : page.index('id="held-record"')]
    assert 'aria-labelledby="person-map-title person-map-desc"' in section
    email = section[section.index("<h3>Email address</h3>") :]
    email = email[: email.index("</article>")]
    assert "source: tests" in email
    assert "“Consent to marketing messages”, version 2026-11-01" in email
    assert "Shop CRM (webhook receiver" in email
    assert "Until you delete it" in email
    data = client.get("/privacy/download.json").get_json()
    jsonschema_rs.validator_for(SCHEMA, validate_formats=True).validate(data)
    by_key = {entry["key"]: entry for entry in data["data_map"]}
    assert by_key["email_address"]["notice"]["version"] == "2026-11-01"
    assert (
        "Newsletter tool (integration: checks consent before each send)"
        in (by_key["email_address"]["receivers"])
    )
    session.rollback()


def test_times_are_in_utc_and_say_so_when_the_zone_is_unknown(
    app: Flask, client: FlaskClient, session: Session, rules: Rules
) -> None:
    # No country given, and a documentation address estimates none: the zone is unknown.
    open_session(app, client, session, make_person(session, rules, email=EMAIL, country=None))
    page = client.get("/privacy?lang=it").text
    assert "Gli orari sono indicati in UTC." in page
    assert page.count(" UTC</time>") >= 2
