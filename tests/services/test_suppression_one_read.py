"""Suppression in one read (issue 18): `is_suppressed` answers in one statement, and exactly
what the four reads before it answered (tests/suppression_reference.py)."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, delete, event, func, select
from sqlalchemy.orm import Session

from app.domain.consent import Topic
from app.domain.identifiers import MAILBOX_KIND, Identifier, identifier, identifier_hmac, mailbox
from app.domain.rules import Rules
from app.domain.vocabulary import IdentifierKind, Reason, Status
from app.models import IdentifierVariant, Subject, SubjectIdentifier, Suppression
from app.services.consent import checks, preferences, subjects, suppression
from app.services.consent.preferences import Change
from app.services.identity import identifiers
from tests.factories import make_act, make_subscriber
from tests.suppression_reference import old_is_suppressed

NOW = datetime(2026, 12, 2, tzinfo=UTC)
OLD, NEW = b"old-identifier-key", b"new-identifier-key"
POOL = [
    Identifier(IdentifierKind.EMAIL, "a.b@example.org"),
    Identifier(IdentifierKind.EMAIL, "ab+news@example.org"),  # a.b's mailbox
    Identifier(IdentifierKind.EMAIL, "josé.x@bücher.de"),
    Identifier(IdentifierKind.EMAIL, "c@googlemail.com"),
    Identifier(IdentifierKind.PHONE, "+4915123456789"),
    Identifier(IdentifierKind.EXTERNAL_ID, "crm-1"),
    Identifier("loyalty_card", "L-1"),  # a kind a catalog adds: only its own HMAC counts
]
SECRET = st.sampled_from([OLD, NEW])
HELD = st.tuples(
    st.sampled_from(range(len(POOL))), SECRET, st.sampled_from(["none", "ring", "other"])
)
SUBJECT = st.tuples(st.lists(HELD, max_size=3), st.booleans())  # identifiers, erased
ENTRY = st.tuples(st.sampled_from(range(len(POOL))), SECRET, st.booleans(), st.booleans())
RINGS = st.sampled_from([(OLD,), (NEW,), (NEW, OLD), (OLD, NEW)])


def _ruled(rules: Rules, ring: tuple[bytes, ...]) -> Rules:
    return dataclasses.replace(rules, identifier_key=ring[0], identifier_old_keys=ring[1:])


@contextmanager
def statements(engine: Engine) -> Iterator[list[str]]:
    seen: list[str] = []

    def count(*args: Any) -> None:
        if args[2].split(None, 1)[0].upper() not in ("BEGIN", "COMMIT", "ROLLBACK"):
            seen.append(args[2])

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", count)


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    people=st.lists(SUBJECT, min_size=1, max_size=4),
    entries=st.lists(ENTRY, max_size=6),
    ring=RINGS,
)
def test_the_one_read_answers_what_the_four_reads_answered(
    session: Session,
    rules: Rules,
    people: list[tuple[list[tuple[int, bytes, str]], bool]],
    entries: list[tuple[int, bytes, bool, bool]],
    ring: tuple[bytes, ...],
) -> None:
    asked = _ruled(rules, ring)
    other = _ruled(rules, (b"another-ring",))
    taken: set[str] = set()
    ids = []
    for held, erased in people:
        subject = Subject(id=str(uuid.uuid4()), created_at=NOW, erased_at=NOW if erased else None)
        session.add(subject)
        session.flush()
        ids.append(subject.id)
        for index, secret, variants in held:
            ident = POOL[index]
            key = ident.key(secret)
            if key in taken:
                continue
            taken.add(key)
            row = identifiers.new_row(subject.id, ident, key, now=NOW, source=None)
            session.add(SubjectIdentifier(**row))
            if variants != "none":
                made = asked if variants == "ring" else other
                suppression.store_variants(session, made, [(key, str(ident.kind), ident.value)])
    entered: set[str] = set()
    for index, secret, by_mailbox, lifted in entries:
        ident = POOL[index]
        key = ident.key(secret)
        if by_mailbox and ident.kind is IdentifierKind.EMAIL:
            key = identifier_hmac(secret, MAILBOX_KIND, mailbox(ident.value))
        if key not in entered:
            entered.add(key)
            session.add(
                Suppression(
                    hmac=key, kind="email", created_at=NOW, lifted_at=NOW if lifted else None
                )
            )
    session.flush()
    try:
        for subject_id in [*ids, str(uuid.uuid4()), None]:
            for asked_by in [*POOL, None]:
                old = old_is_suppressed(session, asked, ident=asked_by, subject_id=subject_id)
                new = suppression.is_suppressed(
                    session, asked, ident=asked_by, subject_id=subject_id
                )
                assert new is old, (asked_by, subject_id)
    finally:
        session.rollback()


def _known(session: Session, rules: Rules) -> str:
    """A confirmed subscriber holding a phone number and an external id too."""
    subject_id = make_subscriber(session, rules, email="a.b+x@example.org")
    for kind, value in (("phone", "+4915123456789"), ("external_id", "c1")):
        identifiers.link(session, rules, subject_id, kind, value, make_act())
    return subject_id


def test_a_check_is_one_statement_with_its_suppression_test(
    session: Session, rules: Rules, clean_db: Engine
) -> None:
    subject_id = _known(session, rules)
    newsletter = checks.Question("email", "newsletter")
    asked = [
        identifier(IdentifierKind.EMAIL, "a.b+x@example.org"),
        identifier(IdentifierKind.EXTERNAL_ID, "c1"),  # for the person: contacts in the read
        identifier(IdentifierKind.EMAIL, "nobody@example.org"),
    ]
    for ident in asked:
        with statements(clean_db) as seen:
            checks.check(session, rules, newsletter, ident=ident)
        # next's code: the check's read and suppression's four (three for an unknown address)
        assert len(seen) == 1, (ident, seen)
    with statements(clean_db) as seen:
        suppressed = suppression.is_suppressed(session, rules, subject_id=subject_id)
    assert not suppressed
    assert len(seen) == 1
    # Erased by another address of the same mailbox: still one statement, and suppressed.
    erased = make_subscriber(session, rules, email="ab@example.org")
    subjects.erase(session, rules, erased, make_act())
    for ident in asked[:2]:
        with statements(clean_db) as seen:
            answer = checks.check(session, rules, newsletter, ident=ident)
        assert answer.decision.reason is Reason.SUPPRESSED
        assert len(seen) == 1, (ident, seen)


def test_a_patch_reads_suppression_once_in_one_statement(
    session: Session, rules: Rules, clean_db: Engine
) -> None:
    subject_id = _known(session, rules)
    session.commit()
    with statements(clean_db) as seen:
        preferences.change(
            session,
            rules,
            subject_id,
            [Change(Topic("email", "offers"), Status.GRANTED)],
            make_act(),
        )
    reads = [s for s in seen if "suppressions" in s or "erased_at IS NOT NULL" in s]
    assert len(reads) == 1, reads


def test_identifiers_made_before_their_variants_are_keyed_in_python_until_filled(
    session: Session, rules: Rules, clean_db: Engine
) -> None:
    subject_id = _known(session, rules)
    subjects.erase(
        session, rules, make_subscriber(session, rules, email="ab@example.org"), make_act()
    )
    session.execute(delete(IdentifierVariant))
    session.commit()
    assert suppression.is_suppressed(session, rules, subject_id=subject_id)  # a.b+x's mailbox
    assert suppression.fill_variants(session, rules).identifiers == 3
    with statements(clean_db) as seen:
        assert suppression.is_suppressed(session, rules, subject_id=subject_id)
    assert len(seen) == 1
    assert suppression.fill_variants(session, rules).identifiers == 0


def test_variants_go_with_their_identifier_and_move_with_a_rekeying(
    session: Session, rules: Rules, clean_db: Engine
) -> None:
    subject_id = _known(session, rules)
    session.commit()
    # The email's own and mailbox key, the phone's and the external id's.
    assert session.scalar(select(func.count()).select_from(IdentifierVariant)) == 4
    rotated = _ruled(rules, (NEW, rules.identifier_key))
    subjects.rekey(session, rotated)
    # Moved with the re-keyed identifiers, but made under the old ring: keyed in Python
    # until filled under the new one.
    assert suppression.fill_variants(session, rotated).identifiers == 3
    # Each under both keys of the new ring; the old ring's are dropped.
    assert session.scalar(select(func.count()).select_from(IdentifierVariant)) == 8
    with statements(clean_db) as seen:
        assert not suppression.is_suppressed(session, rotated, subject_id=subject_id)
    assert len(seen) == 1
    subjects.erase(session, rotated, subject_id, make_act())
    assert session.scalar(select(func.count()).select_from(IdentifierVariant)) == 0
