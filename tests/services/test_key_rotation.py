"""Rotating the identifier HMAC key loses no one: old keys still match, suppressions hold."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.domain.catalog import Catalog
from app.domain.identifiers import identifier
from app.domain.rules import Rules
from app.domain.vocabulary import IdentifierKind, Reason, Status
from app.models import SubjectIdentifier, Suppression
from app.services.consent import checks, subjects
from app.services.optin import confirmation, subscriptions
from tests.factories import make_act

OFFERS = checks.Question("email", "offers")
US = frozenset({"US"})


def reason(session: Session, rules: Rules, address: str) -> Reason:
    ident = identifier(IdentifierKind.EMAIL, address)
    return checks.check(session, rules, OFFERS, ident=ident).decision.reason


def batch(session: Session, rules: Rules, *addresses: str) -> list[Reason]:
    return [r.decision.reason for r in checks.check_emails(session, rules, OFFERS, addresses)]


def opt_in(session: Session, rules: Rules, address: str) -> subscriptions.Requested:
    ident = identifier(IdentifierKind.EMAIL, address)
    return subscriptions.request(
        session, rules, subscriptions.OptIn(ident, "email", ["offers"], country="US"), make_act()
    )


def test_a_suppressed_subject_stays_suppressed_after_rotation_and_rekeying(
    session: Session, catalog: Catalog
) -> None:
    old = Rules(catalog=catalog, identifier_key=b"old-key", single_opt_in_countries=US)
    opt_in(session, old, "kept@example.org")
    gone = opt_in(session, old, "gone@example.org")
    subjects.erase(session, old, gone.subject_id, make_act())
    assert reason(session, old, "gone@example.org") is Reason.SUPPRESSED

    rotated = Rules(
        catalog=catalog,
        identifier_key=b"new-key",
        identifier_old_keys=(b"old-key",),
        single_opt_in_countries=US,
    )
    # Before re-keying, the old key finds both.
    assert reason(session, rotated, "kept@example.org") is Reason.GRANTED
    assert reason(session, rotated, " GONE@example.org") is Reason.SUPPRESSED
    assert batch(session, rotated, "kept@example.org", "gone@example.org", "new@example.org") == [
        Reason.GRANTED,
        Reason.SUPPRESSED,
        Reason.NO_RECORD,
    ]
    assert subjects.find(session, rotated, IdentifierKind.EMAIL, "kept@example.org")

    report = subjects.rekey(session, rotated)
    # Two suppression entries kept: the erased address's and its mailbox's.
    assert (report.identifiers, report.suppressions_kept) == (1, 2)
    new_key = identifier(IdentifierKind.EMAIL, "kept@example.org").key(b"new-key")
    assert session.scalars(select(SubjectIdentifier.hmac)).all() == [new_key]
    assert subjects.rekey(session, rotated).identifiers == 0  # idempotent

    # After re-keying: the identifier answers under the new key, the suppression still holds.
    assert reason(session, rotated, "kept@example.org") is Reason.GRANTED
    assert reason(session, rotated, "gone@example.org") is Reason.SUPPRESSED
    assert batch(session, rotated, "gone@example.org") == [Reason.SUPPRESSED]
    # A new opt-in of the suppressed address needs its confirmation even where single opt-in
    # applies; the suppression moves to the new key then, and the confirmation lifts it.
    again = opt_in(session, rotated, "gone@example.org")
    assert again.status is Status.PENDING
    assert again.request is not None
    gone_new = identifier(IdentifierKind.EMAIL, "gone@example.org").key(b"new-key")
    # The address's entry moved to the new key; its mailbox entry stays under the old one,
    # which the ring still matches.
    assert gone_new in session.scalars(select(Suppression.hmac)).all()
    assert reason(session, rotated, "gone@example.org") is Reason.SUPPRESSED  # until confirmed
    confirmation.confirm_request(session, rotated, again.request.id, make_act())
    assert reason(session, rotated, "gone@example.org") is Reason.GRANTED
