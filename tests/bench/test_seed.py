"""The bench seeder writes real data: a chain that verifies and checks that answer as planned."""

from __future__ import annotations

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from app.domain.identifiers import Identifier
from app.domain.rules import Rules
from app.domain.vocabulary import IdentifierKind
from app.services.audit import trail
from app.services.consent import checks
from bench.seed import email_for, expected_reason, seed
from tests.conftest import IDENTIFIER_KEY

NEWSLETTER = checks.Question(channel="email", category="newsletter")


def test_seeded_chain_verifies(clean_db: Engine) -> None:
    seeded = seed(clean_db, IDENTIFIER_KEY, 25)

    with Session(clean_db) as session:
        result = trail.verify(session)

    assert result.is_ok, result.problem
    assert result.events_checked == seeded.events


def test_seeding_twice_continues_the_chain(clean_db: Engine) -> None:
    seed(clean_db, IDENTIFIER_KEY, 5)
    seed(clean_db, IDENTIFIER_KEY, 5, first=5)

    with Session(clean_db) as session:
        assert trail.verify(session).is_ok


def test_seeded_subjects_answer_single_checks_as_planned(clean_db: Engine, rules: Rules) -> None:
    seed(clean_db, IDENTIFIER_KEY, 20)

    with Session(clean_db) as session:
        reasons = [
            str(
                checks.check(
                    session,
                    rules,
                    NEWSLETTER,
                    ident=Identifier(IdentifierKind.EMAIL, email_for(i)),
                ).decision.reason
            )
            for i in range(20)
        ]

    assert reasons == [expected_reason(i) for i in range(20)]


def test_seeded_subjects_answer_batch_checks_as_planned(clean_db: Engine, rules: Rules) -> None:
    seed(clean_db, IDENTIFIER_KEY, 20)
    emails = [email_for(i) for i in range(20)] + ["nobody@bench.example"]

    with Session(clean_db) as session:
        results = checks.check_emails(session, rules, NEWSLETTER, emails)

    assert [str(r.decision.reason) for r in results] == [
        *(expected_reason(i) for i in range(20)),
        "no_record",
    ]
