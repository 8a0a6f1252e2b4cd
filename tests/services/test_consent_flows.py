"""Opting in, changing, unsubscribing and erasing, as the check then sees it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.domain.consent import Topic
from app.domain.errors import SubjectErasedError, UnknownTopicError
from app.domain.identifiers import identifier
from app.domain.rules import Rules
from app.domain.vocabulary import IdentifierKind, Reason, Status
from app.models import ConsentEvent, Evidence, Subject, SubjectIdentifier, Suppression
from app.services.audit import trail
from app.services.consent import checks, preferences, subjects
from app.services.optin import confirmation, subscriptions
from tests.factories import make_act, make_subscriber, withdraw_newsletter

NEWSLETTER = checks.Question("email", "newsletter")


def reason(
    session: Session, rules: Rules, email: str, question: checks.Question = NEWSLETTER
) -> Reason:
    ident = identifier(IdentifierKind.EMAIL, email)
    return checks.check(session, rules, question, ident=ident).decision.reason


def test_an_email_opt_in_waits_for_confirmation(session: Session, rules: Rules) -> None:
    make_subscriber(session, rules, email="ada@example.org", confirmed=False)
    assert reason(session, rules, "ada@example.org") is Reason.PENDING_CONFIRMATION
    assert reason(session, rules, " ADA@example.org ") is Reason.PENDING_CONFIRMATION


def test_confirming_grants_and_confirming_twice_writes_nothing(
    session: Session, rules: Rules
) -> None:
    requested = subscriptions.request(
        session,
        rules,
        identifier(IdentifierKind.EMAIL, "ada@example.org"),
        "email",
        ["newsletter"],
        make_act(),
    )
    assert requested.status is Status.PENDING
    assert requested.request is not None
    confirmation.confirm_request(session, rules, requested.request.id, make_act())
    count = session.scalar(select(func.count()).select_from(ConsentEvent))
    confirmation.confirm_request(session, rules, requested.request.id, make_act())
    assert session.scalar(select(func.count()).select_from(ConsentEvent)) == count
    assert reason(session, rules, "ada@example.org") is Reason.GRANTED


def test_single_opt_in_countries_grant_at_once(session: Session, catalog: object) -> None:
    from app.domain.catalog import Catalog

    assert isinstance(catalog, Catalog)
    lenient = Rules(catalog=catalog, identifier_key=b"k", single_opt_in_countries=frozenset({"US"}))
    requested = subscriptions.request(
        session,
        lenient,
        identifier(IdentifierKind.EMAIL, "bo@example.org"),
        "email",
        ["offers"],
        make_act(),
        country="US",
    )
    assert requested.status is Status.GRANTED
    assert requested.request is None
    offers = checks.Question("email", "offers")
    assert reason(session, lenient, "bo@example.org", offers) is Reason.GRANTED


def test_transactional_categories_cannot_be_opted_into(session: Session, rules: Rules) -> None:
    with pytest.raises(UnknownTopicError):
        subscriptions.request(
            session,
            rules,
            identifier(IdentifierKind.EMAIL, "a@example.org"),
            "email",
            ["order_updates"],
            make_act(),
        )


def test_withdrawing_takes_effect_at_once(session: Session, rules: Rules) -> None:
    subject_id = make_subscriber(session, rules, email="ada@example.org")
    withdraw_newsletter(session, rules, subject_id)
    assert reason(session, rules, "ada@example.org") is Reason.WITHDRAWN


def test_withdrawing_the_whole_channel_denies_every_category_on_it(
    session: Session, rules: Rules
) -> None:
    subject_id = make_subscriber(
        session, rules, email="ada@example.org", categories=["newsletter", "offers"]
    )
    preferences.change(
        session,
        rules,
        subject_id,
        [preferences.Change(Topic("email"), Status.WITHDRAWN)],
        make_act(),
    )
    assert reason(session, rules, "ada@example.org") is Reason.WITHDRAWN
    assert (
        reason(session, rules, "ada@example.org", checks.Question("email", "offers"))
        is Reason.WITHDRAWN
    )


def test_granting_a_category_on_a_new_channel_opts_into_the_channel(
    session: Session, rules: Rules
) -> None:
    subject_id = make_subscriber(session, rules, email="ada@example.org")
    preferences.change(
        session,
        rules,
        subject_id,
        [preferences.Change(Topic("push", "offers"), Status.GRANTED)],
        make_act(),
    )
    answer = checks.check(session, rules, checks.Question("push", "offers"), subject_id=subject_id)
    assert answer.decision.reason is Reason.GRANTED


def test_unsubscribe_all_then_regrant_one_pair(session: Session, rules: Rules) -> None:
    subject_id = make_subscriber(
        session, rules, email="ada@example.org", categories=["newsletter", "offers"]
    )
    preferences.unsubscribe_all(session, rules, subject_id, make_act())
    assert reason(session, rules, "ada@example.org") is Reason.UNSUBSCRIBED_ALL
    events = session.scalar(select(func.count()).select_from(ConsentEvent))
    preferences.unsubscribe_all(session, rules, subject_id, make_act())
    assert session.scalar(select(func.count()).select_from(ConsentEvent)) == events  # idempotent
    preferences.change(
        session,
        rules,
        subject_id,
        [preferences.Change(Topic("email", "newsletter"), Status.GRANTED)],
        make_act(),
    )
    assert reason(session, rules, "ada@example.org") is Reason.GRANTED
    assert (
        reason(session, rules, "ada@example.org", checks.Question("email", "offers"))
        is Reason.UNSUBSCRIBED_ALL
    )


def test_consent_older_than_the_maximum_age_expires(session: Session, catalog: object) -> None:
    from app.domain.catalog import Catalog

    assert isinstance(catalog, Catalog)
    strict = Rules(catalog=catalog, identifier_key=b"k", max_consent_age=timedelta(days=30))
    long_ago = datetime.now(UTC) - timedelta(days=40)
    make_subscriber(session, strict, email="old@example.org", now=long_ago)
    make_subscriber(session, strict, email="new@example.org")
    assert reason(session, strict, "old@example.org") is Reason.EXPIRED
    assert reason(session, strict, "new@example.org") is Reason.GRANTED


def test_purposes_are_granted_and_checked_like_categories(session: Session, rules: Rules) -> None:
    subject_id = make_subscriber(session, rules, email="ada@example.org")
    question = checks.Question(purpose="partner_sharing")
    assert reason(session, rules, "ada@example.org", question) is Reason.NO_RECORD
    preferences.change(
        session,
        rules,
        subject_id,
        [preferences.Change(Topic(purpose="partner_sharing"), Status.GRANTED)],
        make_act(),
    )
    assert reason(session, rules, "ada@example.org", question) is Reason.GRANTED


def test_erasure_removes_personal_data_and_keeps_a_verifiable_chain(
    session: Session, rules: Rules
) -> None:
    subject_id = make_subscriber(session, rules, email="erase.me@example.org")
    assert (session.scalar(select(func.count()).select_from(Evidence)) or 0) > 0
    subjects.erase(session, rules, subject_id, make_act())
    assert session.scalar(select(func.count()).select_from(SubjectIdentifier)) == 0
    assert session.scalar(select(func.count()).select_from(Evidence)) == 0
    # One entry for the address, one for its mailbox (its plus and dot variants).
    assert session.scalar(select(func.count()).select_from(Suppression)) == 2
    subject = session.get(Subject, subject_id)
    assert subject is not None
    assert subject.erased_at is not None
    assert trail.verify(session).is_ok
    exported = "".join(trail.to_ndjson(trail.iter_events(session, trail.EventFilter())))
    assert "erase.me@example.org" not in exported
    assert "198.51.100.7" not in exported
    assert reason(session, rules, "Erase.Me@example.org ") is Reason.SUPPRESSED
    by_id = checks.check(session, rules, NEWSLETTER, subject_id=subject_id)
    assert by_id.decision.reason is Reason.SUPPRESSED
    with pytest.raises(SubjectErasedError):
        preferences.change(
            session,
            rules,
            subject_id,
            [preferences.Change(Topic("email", "newsletter"), Status.GRANTED)],
            make_act(),
        )


def test_a_suppressed_address_is_granted_nothing_until_it_confirms_again(
    session: Session, catalog: object
) -> None:
    from app.domain.catalog import Catalog

    assert isinstance(catalog, Catalog)
    lenient = Rules(catalog=catalog, identifier_key=b"k", single_opt_in_countries=frozenset({"US"}))
    subject_id = make_subscriber(session, lenient, email="back@example.org")
    subjects.erase(session, lenient, subject_id, make_act())
    again = subscriptions.request(
        session,
        lenient,
        identifier(IdentifierKind.EMAIL, " BACK@example.org"),
        "email",
        ["newsletter"],
        make_act(),
        country="US",
    )
    assert again.status is Status.PENDING  # single opt-in does not apply to a suppressed address
    assert reason(session, lenient, "back@example.org") is Reason.SUPPRESSED
    assert again.request is not None
    confirmation.confirm_request(session, lenient, again.request.id, make_act())
    assert reason(session, lenient, "back@example.org") is Reason.GRANTED


def test_batch_answers_in_input_order_with_duplicates(session: Session, rules: Rules) -> None:
    make_subscriber(session, rules, email="a@example.org")
    make_subscriber(session, rules, email="p@example.org", confirmed=False)
    emails = ["nobody@example.org", "A@example.org", "p@example.org", "a@example.org "]
    results = checks.check_emails(session, rules, NEWSLETTER, emails)
    assert [r.email for r in results] == emails
    assert [r.decision.reason for r in results] == [
        Reason.NO_RECORD,
        Reason.GRANTED,
        Reason.PENDING_CONFIRMATION,
        Reason.GRANTED,
    ]


def test_batch_of_ten_thousand_crosses_chunk_boundaries(session: Session, rules: Rules) -> None:
    make_subscriber(session, rules, email="needle@example.org")
    emails = [f"n{i}@example.org" for i in range(9_999)] + ["needle@example.org"]
    results = checks.check_emails(session, rules, NEWSLETTER, emails)
    assert len(results) == 10_000
    assert [r.decision.allowed for r in results].count(True) == 1
    assert results[-1].decision.allowed
