"""Adding an address or number on the preference page, through the real page and its CSRF."""

from __future__ import annotations

import re
from collections.abc import Callable

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from app.domain.rules import Rules
from app.models import OutboxMessage, SubjectIdentifier
from app.services.consent import subjects
from tests.conftest import ApiClient
from tests.factories import make_act
from tests.web.pages import csrf_token, preference_token, subscriber
from tests.web.test_signup_pages import csrf_of

CONFIRM = re.compile(r"http://\S+(/confirm/[\w.\-]+)")


def reason(api: ApiClient, email: str) -> str:
    response = api.get(f"/v1/consent/check?email={email}&channel=email&category=newsletter")
    return str(response.get_json()["reason"])


def add(
    client: FlaskClient, app: Flask, subject_id: str, value: str, field: str = "email"
) -> tuple[int, str, str]:
    """Post the page's own form; the status, where it redirects, and the page it lands on."""
    path = f"/p/{preference_token(app, subject_id)}"
    html = client.get(path).get_data(as_text=True)
    posted = client.post(
        f"{path}/contacts/{field}",
        data={"csrf_token": csrf_token(html), field: value, "locale": "en"},
    )
    landed = client.get(posted.headers.get("Location", path)).get_data(as_text=True)
    return posted.status_code, posted.headers.get("Location", ""), landed


def outbox(engine: Engine, to: str) -> list[OutboxMessage]:
    with Session(engine) as session:
        return list(session.scalars(select(OutboxMessage).where(OutboxMessage.to_address == to)))


def test_an_address_added_on_the_page_waits_for_its_own_confirmation(
    app: Flask, client: FlaskClient, api: ApiClient, clean_db: Engine, rules: Rules
) -> None:
    ada = subscriber(clean_db, rules)
    status, _, page = add(client, app, ada, "ada.work@example.org")
    assert status == 303
    assert "a link to confirm it is on its way" in page
    assert "ada.work@example.org" in page  # in the list of addresses held
    assert reason(api, "ada.work@example.org") == "pending_confirmation"
    [mailed] = outbox(clean_db, "ada.work@example.org")
    found = CONFIRM.search(mailed.body_text or "")
    assert found is not None
    assert client.post(found.group(1)).status_code == 200  # the link is the proof: no CSRF
    assert reason(api, "ada.work@example.org") == "granted"


def test_the_form_needs_its_csrf_token(
    app: Flask, client: FlaskClient, clean_db: Engine, rules: Rules
) -> None:
    ada = subscriber(clean_db, rules)
    path = f"/p/{preference_token(app, ada)}/contacts/email"
    assert client.post(path, data={"email": "ada.work@example.org"}).status_code == 400
    assert outbox(clean_db, "ada.work@example.org") == []
    with Session(clean_db) as session:
        values = session.scalars(select(SubjectIdentifier.value)).all()
    assert "ada.work@example.org" not in values


def test_an_address_held_by_another_person_gets_the_same_answer(
    app: Flask, client: FlaskClient, api: ApiClient, clean_db: Engine, rules: Rules
) -> None:
    ada = subscriber(clean_db, rules)
    subscriber(clean_db, rules, email="grace@example.org")
    new = add(client, app, ada, "new@example.org")
    taken = add(client, app, ada, "grace@example.org")
    # The same status and redirect (and so the same bytes), apart from the page's own token.
    assert (new[0], new[1].partition("?")[2]) == (taken[0], taken[1].partition("?")[2])
    assert "a link to confirm it is on its way" in taken[2]
    assert "grace@example.org" not in taken[2]
    assert [m.template for m in outbox(clean_db, "grace@example.org")] == ["contact_taken"]
    assert reason(api, "grace@example.org") == "granted"  # still Grace's, unchanged


def test_a_malformed_or_suppressed_address_is_a_readable_error(
    app: Flask, client: FlaskClient, clean_db: Engine, rules: Rules
) -> None:
    ada = subscriber(clean_db, rules)
    status, _, page = add(client, app, ada, "not an address")
    assert status == 303
    assert 'aria-invalid="true"' in page
    assert "Enter a valid email address" in page
    gone = subscriber(clean_db, rules, email="gone@example.org")
    with Session(clean_db) as session:
        subjects.erase(session, rules, gone, make_act())
    _, _, page = add(client, app, ada, "gone@example.org")
    assert "asked us not to contact it" in page
    assert outbox(clean_db, "gone@example.org") == []
    _, _, page = add(client, app, ada, "12", field="phone")
    assert "Enter a valid mobile number" in page


def test_a_number_added_on_the_page_offers_sms(
    app: Flask, client: FlaskClient, clean_db: Engine, rules: Rules
) -> None:
    ada = subscriber(clean_db, rules)
    _, location, page = add(client, app, ada, "+49 151 12345678", field="phone")
    assert location.endswith("saved=added-phone")
    assert "+4915112345678" in page
    assert 'value="sms:' in page  # the SMS switches, now that a number is held


def test_adding_addresses_spends_the_shared_budget_of_the_mail_sending_forms(
    make_app: Callable[..., Flask], clean_db: Engine, rules: Rules
) -> None:
    app = make_app(ratelimit_enabled=True, public_form_rate="2/minute", mailbox_rate="100/minute")
    http = app.test_client()
    ada = subscriber(clean_db, rules)
    assert add(http, app, ada, "one@example.org")[0] == 303
    assert add(http, app, ada, "two@example.org")[0] == 303
    assert add(http, app, ada, "three@example.org")[0] == 429
    form = {"csrf_token": csrf_of(http, "/preferences"), "email": "four@example.org"}
    assert http.post("/preferences", data=form).status_code == 429  # one budget for all
