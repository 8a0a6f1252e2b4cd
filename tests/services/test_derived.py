"""Derived data: the country estimated from the IP at sign-up, stored with its origin, erased."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.domain.identifiers import identifier
from app.domain.rules import Rules
from app.domain.vocabulary import IdentifierKind
from app.models import DerivedDatum
from app.services.consent import derived, subjects
from app.services.optin import subscriptions
from tests.factories import make_act

GERMAN_IP = "193.99.144.80"  # a public address registered in Germany; data only


def _sign_up(session: Session, rules: Rules, *, ip: str, country: str | None = None) -> str:
    return subscriptions.request(
        session,
        rules,
        subscriptions.OptIn(
            identifier(IdentifierKind.EMAIL, "ada@example.org"),
            "email",
            ["newsletter"],
            country=country,
        ),
        make_act(ip=ip),
    ).subject_id


def test_a_sign_up_without_a_country_stores_the_estimate_with_source_and_method(
    session: Session, rules: Rules
) -> None:
    subject_id = _sign_up(session, rules, ip=GERMAN_IP)
    (row,) = derived.of_subject(session, subject_id)
    assert (row.key, row.value, row.source) == ("estimated_country", "DE", "ip_address")
    assert "geoip2fast" in row.method
    assert subjects.get(session, subject_id).country is None  # never stored as given


def test_a_given_country_is_kept_as_given_and_nothing_is_estimated(
    session: Session, rules: Rules
) -> None:
    subject_id = _sign_up(session, rules, ip=GERMAN_IP, country="AT")
    assert derived.of_subject(session, subject_id) == []
    assert subjects.get(session, subject_id).country == "AT"


def test_an_address_of_no_country_estimates_nothing(session: Session, rules: Rules) -> None:
    assert derived.of_subject(session, _sign_up(session, rules, ip="192.0.2.1")) == []


def test_erasure_deletes_the_estimate(session: Session, rules: Rules) -> None:
    subject_id = _sign_up(session, rules, ip=GERMAN_IP)
    subjects.erase(session, rules, subject_id, make_act())
    assert session.scalars(select(DerivedDatum)).all() == []
