"""Suppression: every path asks one function, and no variant of an erased address escapes."""

from __future__ import annotations

import dataclasses

import pytest
from sqlalchemy.orm import Session

from app.domain.consent import Topic
from app.domain.identifiers import identifier
from app.domain.rules import Rules
from app.domain.vocabulary import IdentifierKind, Reason, Status
from app.services.consent import checks, preferences, subjects, suppression
from app.services.optin import confirmation, subscriptions
from tests.factories import make_act, make_subscriber

NEWSLETTER = checks.Question("email", "newsletter")
ERASED = "josé.x@bücher.de"

VARIANTS = [
    "josé.x@bücher.de",
    "JOSÉ.X@BÜCHER.DE",  # case
    "  josé.x@bücher.de \t",  # spaces
    "jose\u0301.x@bu\u0308cher.de",  # NFD
    "josé.x@xn--bcher-kva.de",  # punycode
    "José.X@XN--BCHER-KVA.de",  # punycode and case
    "josé.x+news@bücher.de",  # plus-address: the same mailbox
    "joséx@bücher.de",  # dot variant: the same mailbox
    " JOSE\u0301.X+promo@xn--bcher-kva.DE ",  # all at once
]


@pytest.fixture
def erased(session: Session, rules: Rules) -> str:
    subject_id = make_subscriber(session, rules, email=ERASED)
    subjects.erase(session, rules, subject_id, make_act())
    return subject_id


@pytest.mark.parametrize("variant", VARIANTS)
def test_no_variant_of_an_erased_address_escapes_suppression(
    session: Session, rules: Rules, erased: str, variant: str
) -> None:
    ident = identifier(IdentifierKind.EMAIL, variant)
    assert suppression.is_suppressed(session, rules, ident=ident)
    single = checks.check(session, rules, NEWSLETTER, ident=ident)
    assert single.decision.reason is Reason.SUPPRESSED
    [batch] = checks.check_emails(session, rules, NEWSLETTER, [variant])
    assert batch.decision.reason is Reason.SUPPRESSED
    # Signing up again by the variant grants nothing until that address confirms.
    again = subscriptions.request(
        session, rules, subscriptions.OptIn(ident, "email", ["newsletter"]), make_act()
    )
    assert again.status is Status.PENDING
    assert checks.check(session, rules, NEWSLETTER, ident=ident).decision.reason is (
        Reason.SUPPRESSED
    )


def test_another_mailbox_on_the_same_domain_is_not_suppressed(
    session: Session, rules: Rules, erased: str
) -> None:
    ident = identifier(IdentifierKind.EMAIL, "maria@bücher.de")
    assert not suppression.is_suppressed(session, rules, ident=ident)


def test_a_returning_person_is_suppressed_by_subject_id_and_in_their_preferences(
    session: Session, rules: Rules, erased: str
) -> None:
    # Found on a live system: subscribe, erase, subscribe again, PATCH a grant.
    ident = identifier(IdentifierKind.EMAIL, ERASED)
    again = subscriptions.request(
        session, rules, subscriptions.OptIn(ident, "email", ["newsletter"]), make_act()
    )
    newsletter = Topic("email", "newsletter")
    preferences.change(
        session,
        rules,
        again.subject_id,
        [
            preferences.Change(Topic("email"), Status.GRANTED),
            preferences.Change(newsletter, Status.GRANTED),
        ],
        make_act(),
    )
    by_id = checks.check(session, rules, NEWSLETTER, subject_id=again.subject_id)
    assert by_id.decision.reason is Reason.SUPPRESSED
    view = preferences.view(session, rules, again.subject_id)
    assert not any(pair.decision.allowed for pair in view.pairs)
    assert {pair.decision.reason for pair in view.pairs} == {Reason.SUPPRESSED}
    # Only the returning address's own confirmation lifts it, on every path.
    assert again.request is not None
    confirmation.confirm_request(session, rules, again.request.id, make_act(actor="subject"))
    by_id = checks.check(session, rules, NEWSLETTER, subject_id=again.subject_id)
    assert by_id.decision.reason is Reason.GRANTED
    assert checks.check(session, rules, NEWSLETTER, ident=ident).decision.reason is Reason.GRANTED


def test_the_erased_subject_id_stays_suppressed(
    session: Session, rules: Rules, erased: str
) -> None:
    assert suppression.is_suppressed(session, rules, subject_id=erased)
    by_id = checks.check(session, rules, NEWSLETTER, subject_id=erased)
    assert by_id.decision.reason is Reason.SUPPRESSED


def test_a_suppression_made_under_an_earlier_identifier_key_holds(
    session: Session, rules: Rules, erased: str
) -> None:
    rotated = dataclasses.replace(
        rules, identifier_key=b"the-new-key", identifier_old_keys=(rules.identifier_key,)
    )
    ident = identifier(IdentifierKind.EMAIL, "JOSE\u0301.X+x@xn--bcher-kva.de")
    assert suppression.is_suppressed(session, rotated, ident=ident)
    [batch] = checks.check_emails(session, rotated, NEWSLETTER, [ERASED])
    assert batch.decision.reason is Reason.SUPPRESSED
