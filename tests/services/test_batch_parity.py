"""The batch check answers, for every entry, exactly what the single check answers for it: a
varied population asked in one batch, and generated batches over it (a property)."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.orm import Session

from app.domain.consent import Topic
from app.domain.errors import InvalidIdentifierError
from app.domain.identifiers import identifier
from app.domain.rules import Rules
from app.domain.vocabulary import IdentifierKind, Reason, Status
from app.models import utcnow
from app.services.consent import checks, preferences, subjects
from app.services.identity import identifiers
from tests.factories import make_act, make_subscriber

QUESTIONS = [
    checks.Question("email", "newsletter"),
    checks.Question("email", "offers"),
    checks.Question("sms", "offers"),
    checks.Question("email", "order_updates"),  # transactional
    checks.Question(purpose="partner_sharing"),
]

# Every kind of standing, and every way of writing an address the batch must read alike.
ENTRIES = [
    "granted@example.org",
    "GRANTED@Example.ORG",
    "  granted@example.org\t",
    "granted+news@example.org",  # another address (same mailbox): unknown, not suppressed
    "pending@example.org",
    "withdrawn@example.org",
    "channel-off@example.org",
    "all-off@example.org",
    "regranted@example.org",  # unsubscribed all, then the newsletter granted again
    "old@example.org",  # granted long ago: expired where a maximum age applies
    "purpose@example.org",
    "josé.x@bücher.de",  # erased
    "JOSE\u0301.X@XN--BCHER-KVA.de",  # the erased address: NFD, punycode, case
    "josé.x+promo@bücher.de",  # the erased mailbox by plus
    "joséx@bücher.de",  # and by dot
    "back@bücher.de",  # erased, then signed up again (pending)
    "ümlaut@bücher.de",
    "ümlaut@xn--bcher-kva.de",
    "linked@example.org",
    "nobody@example.org",
    "not an address",
    "a@",
    "",
    "@example.org",
]


def _population(session: Session, rules: Rules) -> None:
    now = utcnow()
    make_subscriber(
        session, rules, email="granted@example.org", categories=["newsletter", "offers"]
    )
    make_subscriber(session, rules, email="pending@example.org", confirmed=False)
    changed = [
        ("withdrawn@example.org", Topic("email", "newsletter"), Status.WITHDRAWN),
        ("channel-off@example.org", Topic("email"), Status.WITHDRAWN),
        ("purpose@example.org", Topic(purpose="partner_sharing"), Status.GRANTED),
    ]
    for email, topic, status in changed:
        subject_id = make_subscriber(session, rules, email=email)
        preferences.change(
            session, rules, subject_id, [preferences.Change(topic, status)], make_act()
        )
    for email in ("all-off@example.org", "regranted@example.org"):
        subject_id = make_subscriber(session, rules, email=email)
        preferences.withdraw_all(session, subject_id, make_act(), now=utcnow())
        session.commit()
    newsletter = preferences.Change(Topic("email", "newsletter"), Status.GRANTED)
    preferences.change(session, rules, subject_id, [newsletter], make_act())  # regranted
    make_subscriber(session, rules, email="old@example.org", now=now - timedelta(days=400))
    make_subscriber(session, rules, email="ümlaut@bücher.de")
    for email in ("josé.x@bücher.de", "back@bücher.de"):
        erased = make_subscriber(session, rules, email=email)
        subjects.erase(session, rules, erased, make_act())
    make_subscriber(session, rules, email="back@bücher.de", confirmed=False)
    # Held back by another address it holds: the erased mailbox, by a plus variant.
    linked = make_subscriber(session, rules, email="linked@example.org")
    identifiers.link(session, rules, linked, "email", "josé.x+alt@bücher.de", make_act())


Answer = tuple[bool, Reason]


def _single(session: Session, rules: Rules, question: checks.Question, raw: str) -> Answer:
    try:
        ident = identifier(IdentifierKind.EMAIL, raw)
    except InvalidIdentifierError:
        return (False, Reason.INVALID_IDENTIFIER)
    decision = checks.check(session, rules, question, ident=ident).decision
    return (decision.allowed, decision.reason)


def _batch(
    session: Session, rules: Rules, question: checks.Question, emails: list[str]
) -> list[Answer]:
    return [(d.allowed, d.reason) for d in checks.decide_emails(session, rules, question, emails)]


def _variants(rules: Rules) -> list[Rules]:
    """As configured, with a maximum consent age, and after a key rotation."""
    return [
        rules,
        dataclasses.replace(rules, max_consent_age=timedelta(days=365)),
        dataclasses.replace(
            rules, identifier_key=b"a-newer-key", identifier_old_keys=(rules.identifier_key,)
        ),
    ]


def test_the_batch_answers_what_the_single_check_answers(session: Session, rules: Rules) -> None:
    _population(session, rules)
    emails = ENTRIES + ENTRIES[::-1]  # every entry twice: duplicates answer alike
    seen: set[Reason] = set()
    for variant in _variants(rules):
        for question in QUESTIONS:
            expected = [_single(session, variant, question, raw) for raw in emails]
            assert _batch(session, variant, question, emails) == expected, question
            seen.update(reason for _, reason in expected)
    # The population does reach every reason (else the comparison proves less than it says).
    assert seen == set(Reason)


def test_generated_batches_answer_as_single_checks(session: Session, rules: Rules) -> None:
    _population(session, rules)
    singles = {
        (n, q, raw): _single(session, variant, question, raw)
        for n, variant in enumerate(_variants(rules))
        for q, question in enumerate(QUESTIONS)
        for raw in ENTRIES
    }
    raw_entries = st.sampled_from(ENTRIES) | st.emails().map(str)

    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
    @given(
        emails=st.lists(raw_entries, min_size=1, max_size=40),
        n=st.integers(0, 2),
        q=st.integers(0, len(QUESTIONS) - 1),
    )
    def answers_alike(emails: list[str], n: int, q: int) -> None:
        variant, question = _variants(rules)[n], QUESTIONS[q]
        expected = [
            singles.get((n, q, raw)) or _single(session, variant, question, raw) for raw in emails
        ]
        assert _batch(session, variant, question, emails) == expected

    answers_alike()
