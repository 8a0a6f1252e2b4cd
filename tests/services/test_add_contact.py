"""Adding an address or number on the preference page, without Flask: linked, confirmed apart."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.domain.consent import Topic
from app.domain.errors import InvalidIdentifierError
from app.domain.identifiers import identifier
from app.domain.rules import Rules
from app.domain.vocabulary import Action, IdentifierKind, Reason, Status
from app.models import ConsentEvent, OutboxMessage, SubjectIdentifier, SubscriptionRequest
from app.services import tokens
from app.services.consent import checks, notices, preferences, subjects
from app.services.delivery import mail
from app.services.optin import confirmation
from app.services.preference_center import preference_page
from tests.factories import make_act, make_subscriber
from tests.web.pages import notices_path

TEMPLATES = Path(__file__).parent.parent.parent / "templates" / "mail"
MAILER = confirmation.Mailer(
    mail.MailTemplates(TEMPLATES),
    tokens.Tokens("test-secret", {p: timedelta(hours=72) for p in tokens.Purpose}),
    "http://127.0.0.1:5000",
    "Example Shop <no-reply@example.org>",
)
VISIT = preference_page.PreferenceVisit(ip="192.0.2.9", user_agent="tests")
NEWSLETTER = checks.Question("email", "newsletter")
OFFERS = checks.Question("email", "offers")


def _token(subject_id: str) -> str:
    return MAILER.tokens.make(tokens.Purpose.PREFERENCES, {"s": subject_id})


def _add(session: Session, rules: Rules, subject_id: str, value: str, kind: str = "email") -> None:
    preference_page.add_contact(
        session,
        rules,
        MAILER,
        _token(subject_id),
        VISIT,
        kind=IdentifierKind(kind),
        value=value,
        locale="en",
    )


def _reason(session: Session, rules: Rules, email: str, question: checks.Question) -> Reason:
    found = checks.check(session, rules, question, ident=identifier(IdentifierKind.EMAIL, email))
    session.commit()
    return found.decision.reason


def _outbox(session: Session) -> list[OutboxMessage]:
    return list(session.scalars(select(OutboxMessage).order_by(OutboxMessage.created_at)))


@pytest.fixture
def ada(session: Session, rules: Rules) -> str:
    notices.publish_file(session, notices_path())
    return make_subscriber(session, rules, email="ada@example.org")


def test_an_added_address_is_linked_and_pending_until_its_own_confirmation(
    session: Session, rules: Rules, ada: str
) -> None:
    _add(session, rules, ada, " Ada.Work@Example.ORG ")
    row = session.scalars(
        select(SubjectIdentifier).where(SubjectIdentifier.value == "ada.work@example.org")
    ).one()
    assert (row.subject_id, row.confirmed_at, row.source) == (ada, None, "preference_page")
    link = session.scalars(
        select(ConsentEvent).where(ConsentEvent.action == Action.LINK).order_by(ConsentEvent.seq)
    ).all()[-1]
    assert (link.subject_id, link.actor, link.source, link.method) == (
        ada,
        "subject",
        "preference_page",
        "preference_page",
    )
    assert json.loads(link.details or "{}")["identifier_id"] == row.id
    assert _reason(session, rules, "ada.work@example.org", NEWSLETTER) is (
        Reason.PENDING_CONFIRMATION
    )
    assert _reason(session, rules, "ada@example.org", NEWSLETTER) is Reason.GRANTED
    [mailed] = [m for m in _outbox(session) if m.to_address == "ada.work@example.org"]
    assert mailed.template == confirmation.TEMPLATE
    assert "/confirm/" in (mailed.body_text or "")
    # The confirmation grants at the new address what the person had chosen, and no more.
    pending = session.scalars(
        select(SubscriptionRequest).where(SubscriptionRequest.identifier_hmac == row.hmac)
    ).one()
    assert json.loads(pending.categories) == ["newsletter"]
    confirmation.confirm_request(session, rules, pending.id, make_act(actor="subject"))
    assert _reason(session, rules, "ada.work@example.org", NEWSLETTER) is Reason.GRANTED
    assert _reason(session, rules, "ada.work@example.org", OFFERS) is Reason.NO_RECORD


def test_an_address_another_person_holds_is_not_linked_and_its_owner_is_told(
    session: Session, rules: Rules, ada: str
) -> None:
    grace = make_subscriber(session, rules, email="grace@example.org")
    before = session.scalar(select(func.count()).select_from(ConsentEvent))
    _add(session, rules, ada, "Grace@example.org")
    assert session.scalar(select(func.count()).select_from(ConsentEvent)) == before
    held = session.scalars(
        select(SubjectIdentifier.subject_id).where(SubjectIdentifier.value == "grace@example.org")
    ).all()
    assert held == [grace]
    [told] = [m for m in _outbox(session) if m.template == preference_page.CONTACT_TAKEN_MAIL]
    assert (told.to_address, told.subject_id) == ("grace@example.org", grace)
    assert "ada@example.org" not in (told.body_text or "")  # nothing of the other person is named
    assert "/confirm/" not in (told.body_text or "")
    # At most one such notice per interval, however often it is tried.
    _add(session, rules, ada, "grace@example.org")
    assert len([m for m in _outbox(session) if m.to_address == "grace@example.org"]) == 1


def test_a_suppressed_address_is_refused_and_nothing_is_written(
    session: Session, rules: Rules, ada: str
) -> None:
    gone = make_subscriber(session, rules, email="gone@example.org")
    subjects.erase(session, rules, gone, make_act())
    before = session.scalar(select(func.count()).select_from(ConsentEvent))
    with pytest.raises(preference_page.ContactRefusedError):
        _add(session, rules, ada, "Gone+news@example.org")
    session.rollback()
    assert session.scalar(select(func.count()).select_from(ConsentEvent)) == before
    assert not [m for m in _outbox(session) if (m.to_address or "").startswith("gone")]


@pytest.mark.parametrize("value", ["not-an-address", "a@b", ""])
def test_a_malformed_address_is_refused(
    session: Session, rules: Rules, ada: str, value: str
) -> None:
    with pytest.raises(InvalidIdentifierError):
        _add(session, rules, ada, value)


def test_a_phone_is_linked_and_follows_the_sms_policy_of_subscriptions(
    session: Session, rules: Rules, ada: str
) -> None:
    _add(session, rules, ada, "+49 151 12345678", kind="phone")
    row = session.scalars(
        select(SubjectIdentifier).where(SubjectIdentifier.kind == IdentifierKind.PHONE)
    ).one()
    assert (row.subject_id, row.value) == (ada, "+4915112345678")
    # POST /v1/subscriptions asks no confirmation for SMS (rules.needs_double_opt_in): nor
    # does the page, and no mail goes to a number.
    assert not rules.needs_double_opt_in("sms", None)
    requests = session.scalars(
        select(SubscriptionRequest).where(SubscriptionRequest.identifier_hmac == row.hmac)
    ).all()
    assert requests == []
    assert not [m for m in _outbox(session) if m.to_address == row.value]
    with pytest.raises(InvalidIdentifierError):
        _add(session, rules, ada, "12", kind="phone")


def test_confirming_an_added_address_does_not_undo_a_withdrawn_channel(
    session: Session, rules: Rules, ada: str
) -> None:
    preferences.change(
        session, rules, ada, [preferences.Change(Topic("email"), Status.WITHDRAWN)], make_act()
    )
    _add(session, rules, ada, "ada.work@example.org")
    pending = session.scalars(select(SubscriptionRequest).order_by(SubscriptionRequest.created_at))
    request = list(pending)[-1]
    assert json.loads(request.categories) == []
    confirmation.confirm_request(session, rules, request.id, make_act(actor="subject"))
    # The address is confirmed; what the person withdrew stays withdrawn, at both addresses.
    for email in ("ada.work@example.org", "ada@example.org"):
        assert _reason(session, rules, email, NEWSLETTER) is Reason.WITHDRAWN
    row = session.scalars(
        select(SubjectIdentifier).where(SubjectIdentifier.value == "ada.work@example.org")
    ).one()
    assert row.confirmed_at is not None


class _NumbersConfirmed(Rules):
    """A policy that asks SMS for a confirmation too (the shipped one does not)."""

    def needs_double_opt_in(self, channel: str, country: str | None) -> bool:
        return channel in ("email", "sms")


def test_where_the_policy_asks_a_number_to_confirm_sms_stays_pending(
    session: Session, rules: Rules, ada: str
) -> None:
    strict = _NumbersConfirmed(catalog=rules.catalog, identifier_key=rules.identifier_key)
    _add(session, strict, ada, "+49 151 12345678", kind="phone")
    row = session.scalars(
        select(SubjectIdentifier).where(SubjectIdentifier.kind == IdentifierKind.PHONE)
    ).one()
    [request] = session.scalars(
        select(SubscriptionRequest).where(SubscriptionRequest.identifier_hmac == row.hmac)
    ).all()
    assert (request.channel, request.mailed_at) == ("sms", None)  # no mail goes to a number
    grant = [
        preferences.Change(Topic("sms"), Status.GRANTED),
        preferences.Change(Topic("sms", "offers"), Status.GRANTED),
    ]
    preferences.change(session, strict, ada, grant, make_act())
    sms = checks.check(
        session,
        strict,
        checks.Question("sms", "offers"),
        ident=identifier(IdentifierKind.PHONE, row.value),
    )
    assert sms.decision.reason is Reason.PENDING_CONFIRMATION
