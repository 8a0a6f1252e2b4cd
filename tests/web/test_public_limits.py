"""Public limits: one budget per IP across the forms that send mail, one per target mailbox
(plus and dot variants as one), per link (not per IP) on the pages emailed links open, and
counted in the database so that every worker shares them."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine

from app.domain.rules import Rules
from tests.web.pages import preference_token, subscriber
from tests.web.test_signup_pages import csrf_of, published

__all__ = ["published"]  # the fixture, shared with the sign-up page tests


def limited(make_app: Callable[..., Flask], **overrides: object) -> Flask:
    return make_app(ratelimit_enabled=True, **overrides)


def subscribe(http: FlaskClient, email: str, ip: str = "203.0.113.5") -> int:
    form = {
        "csrf_token": csrf_of(http, "/subscribe"),
        "email": email,
        "categories": ["newsletter"],
        "notice_version": "2026-11-01",
        "website": "",
    }
    return http.post("/subscribe", data=form, environ_base={"REMOTE_ADDR": ip}).status_code


def ask_for_link(http: FlaskClient, email: str, ip: str = "203.0.113.5") -> int:
    form = {"csrf_token": csrf_of(http, "/preferences"), "email": email, "website": ""}
    return http.post("/preferences", data=form, environ_base={"REMOTE_ADDR": ip}).status_code


def test_the_mail_sending_forms_share_one_budget_per_ip(
    make_app: Callable[..., Flask], published: Engine
) -> None:
    http = limited(make_app, public_form_rate="3/minute", mailbox_rate="100/minute").test_client()
    assert subscribe(http, "a@example.org") == 303
    assert subscribe(http, "b@example.org") == 303
    assert ask_for_link(http, "c@example.org") == 303
    assert ask_for_link(http, "d@example.org") == 429  # the fourth form post from this IP
    assert subscribe(http, "e@example.org") == 429
    assert subscribe(http, "e@example.org", ip="203.0.113.99") == 303  # another IP


def test_plus_and_dot_variants_of_one_mailbox_share_one_budget(
    make_app: Callable[..., Flask], published: Engine
) -> None:
    http = limited(make_app, public_form_rate="100/minute", mailbox_rate="2/hour").test_client()
    assert subscribe(http, "ada.lovelace+1@example.org", ip="198.51.100.1") == 303
    assert subscribe(http, "AdaLovelace+news@example.org", ip="198.51.100.2") == 303
    # From a third IP, a third variant: the same mailbox, so no third mail to it.
    assert subscribe(http, "a.da.lovelace@example.org", ip="198.51.100.3") == 429
    assert ask_for_link(http, "adalovelace+x@example.org", ip="198.51.100.4") == 429
    assert subscribe(http, "grace@example.org", ip="198.51.100.3") == 303


def test_a_link_is_limited_per_token_not_per_ip(
    make_app: Callable[..., Flask], clean_db: Engine, rules: Rules
) -> None:
    app = limited(make_app, public_page_rate_limit="3/minute")
    http = app.test_client()
    mine = preference_token(app, subscriber(clean_db, rules, email="ada@example.org"))
    theirs = preference_token(app, subscriber(clean_db, rules, email="grace@example.org"))
    office = {"REMOTE_ADDR": "192.0.2.10"}  # everyone behind one NAT
    assert [http.get(f"/p/{mine}", environ_base=office).status_code for _ in range(3)] == [200] * 3
    assert http.get(f"/p/{mine}", environ_base={"REMOTE_ADDR": "192.0.2.99"}).status_code == 429
    # A colleague behind the same address opens their own link.
    assert http.get(f"/p/{theirs}", environ_base=office).status_code == 200


def test_confirm_links_from_one_office_are_not_refused_by_ip(
    make_app: Callable[..., Flask], published: Engine
) -> None:
    http = limited(make_app, public_form_rate="5/minute").test_client()
    office = {"REMOTE_ADDR": "192.0.2.10"}
    statuses = [
        http.post(f"/confirm/not-a-real-token-{n}", environ_base=office).status_code
        for n in range(8)
    ]
    assert 429 not in statuses  # eight people confirming is not an attack


def test_the_count_is_shared_by_every_worker(
    make_app: Callable[..., Flask], clean_db: Engine, rules: Rules
) -> None:
    first = limited(make_app, public_page_rate_limit="2/minute")
    token = preference_token(first, subscriber(clean_db, rules))
    assert first.test_client().get(f"/p/{token}").status_code == 200
    # Another worker process builds its own app: the count lives in the database.
    second = limited(make_app, public_page_rate_limit="2/minute")
    assert second.test_client().get(f"/p/{token}").status_code == 200
    assert second.test_client().get(f"/p/{token}").status_code == 429


@pytest.mark.parametrize(
    ("storage", "said"),
    [
        ("database://", "shared by every worker"),
        ("memory://", "this process's memory only"),
    ],
)
def test_the_start_up_log_says_where_limits_are_counted(
    make_app: Callable[..., Flask],
    clean_db: Engine,
    caplog: pytest.LogCaptureFixture,
    storage: str,
    said: str,
) -> None:
    with caplog.at_level(logging.INFO, logger="app.limits"):
        limited(make_app, ratelimit_storage_url=storage)
    assert said in caplog.text
