"""The consent check: the hot path. One indexed read by the identifier's HMAC, a pure decision."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ARRAY, Select, String, and_, bindparam, func, select, true
from sqlalchemy.orm import Session

from app.domain.consent import (
    ALL_MARKETING,
    INVALID_IDENTIFIER,
    SUPPRESSED,
    Decision,
    Standing,
    Topic,
    channel_topic,
    decide_message,
    decide_purpose,
    pair_topic,
    purpose_topic,
)
from app.domain.errors import InvalidIdentifierError
from app.domain.identifiers import Identifier, normalize_email_fast
from app.domain.rules import Rules
from app.domain.vocabulary import Status
from app.models import ConsentState, Subject, SubjectIdentifier, utcnow
from app.services.consent import suppression
from app.services.consent.ledger import standing_of

BATCH_LIMIT = 10_000


@dataclass(frozen=True)
class Question:
    """What is asked: a channel and category, or a purpose."""

    channel: str | None = None
    category: str | None = None
    purpose: str | None = None

    def topics(self) -> list[Topic]:
        if self.purpose:
            return [purpose_topic(self.purpose)]
        assert self.channel
        assert self.category
        return [ALL_MARKETING, channel_topic(self.channel), pair_topic(self.channel, self.category)]


@dataclass(frozen=True)
class Answer:
    decision: Decision
    subject_id: str | None


def validate(rules: Rules, question: Question) -> bool:
    """Raise UnknownTopicError for what the catalog lacks; return whether it is transactional."""
    if question.purpose:
        rules.catalog.require_purpose(question.purpose)
        return False
    assert question.channel
    assert question.category
    return rules.catalog.require_pair(question.channel, question.category).is_transactional


def check(
    session: Session,
    rules: Rules,
    question: Question,
    *,
    ident: Identifier | None = None,
    subject_id: str | None = None,
    now: datetime | None = None,
) -> Answer:
    is_transactional = validate(rules, question)
    now = now or utcnow()
    if ident is not None:
        for key in ident.keys(rules.identifier_keys):  # old keys only while nothing is found
            subject_id, standings = _by_key(session, key, question)
            if subject_id is not None:
                break
    else:
        subject = session.get(Subject, subject_id) if subject_id else None
        subject_id = subject.id if subject is not None else None
        standings = {} if subject_id is None else _standings(session, subject_id, question)
    if suppression.is_suppressed(session, rules, ident=ident, subject_id=subject_id):
        return Answer(SUPPRESSED, subject_id)
    return Answer(
        _decide(rules, question, is_transactional, subject_id, standings, now), subject_id
    )


@dataclass(frozen=True)
class BatchResult:
    email: str
    decision: Decision


def check_emails(
    session: Session,
    rules: Rules,
    question: Question,
    emails: Sequence[str],
    *,
    now: datetime | None = None,
) -> list[BatchResult]:
    """Decide for many emails with one set-based query; results in input order. An entry that
    is not an address is answered in place (`invalid_identifier`)."""
    is_transactional = validate(rules, question)
    now = now or utcnow()
    normalized: list[str | None] = []
    for raw in emails:
        try:
            normalized.append(normalize_email_fast(raw))
        except InvalidIdentifierError:
            normalized.append(None)
    valid = [n for n in normalized if n]
    entry_keys = suppression.email_keys_of(rules, valid)
    keys = [own[0] for own in entry_keys]  # the current key's, which finds the subject
    found = _by_keys(session, list(dict.fromkeys(keys)), question)
    # Key rotation: look again, under each earlier key, for what is still unknown. Each
    # entry's keys are (own, mailbox) per key of the ring, the current key's first.
    for ring in range(1, len(rules.identifier_keys)):
        unknown = [i for i, key in enumerate(keys) if _is_unknown(found.get(key, _UNKNOWN))]
        if not unknown:
            break
        old = [entry_keys[i][2 * ring] for i in unknown]
        again = _by_keys(session, list(dict.fromkeys(old)), question)
        for i, key in zip(unknown, old, strict=True):
            if not _is_unknown(again.get(key, _UNKNOWN)):
                found[keys[i]] = again[key]
    held_back = suppression.suppressed_keys(session, {k for ks in entry_keys for k in ks})
    held_back.update(
        suppression.suppressed_subjects(
            session, rules, {subject_id for subject_id, _ in found.values() if subject_id}
        )
    )
    results = []
    entries = iter(zip(keys, entry_keys, strict=True))
    for email, value in zip(emails, normalized, strict=True):
        if value is None:
            results.append(BatchResult(email, INVALID_IDENTIFIER))
            continue
        key, suppression_keys = next(entries)
        subject_id, standings = found.get(key, _UNKNOWN)
        if subject_id in held_back or not held_back.isdisjoint(suppression_keys):
            decision = SUPPRESSED
        else:
            decision = _decide(rules, question, is_transactional, subject_id, standings, now)
        results.append(BatchResult(email, decision))
    return results


# Standings keyed by (channel, category, purpose): plain tuples hash faster than Topic.
Key = tuple[str, str, str]
Found = tuple[str | None, dict[Key, Standing]]
_UNKNOWN: Found = (None, {})


def _is_unknown(entry: Found) -> bool:
    return entry[0] is None and not entry[1]


def _params(question: Question) -> dict[str, Any]:
    topics = question.topics()
    return {
        "channels": sorted({t.channel for t in topics}),
        "categories": sorted({t.category for t in topics}),
        "purposes": sorted({t.purpose for t in topics}),
    }


def _by_key(session: Session, key: str, question: Question) -> Found:
    """Subject and the asked standings of one identifier HMAC: one indexed read."""
    statement = _CHECK_BY_KEY[_dialect(session)]
    rows = session.execute(statement, {"key": key, **_params(question)}).all()
    return rows[0].subject_id, _collect(rows)


def _by_keys(session: Session, keys: Sequence[str], question: Question) -> dict[str, Found]:
    """The batch form of `_by_key`: one query, the keys passed as ONE parameter (an array)."""
    dialect = _dialect(session)
    statement = _BATCH_BY_KEYS[dialect]
    keys_param: Any = list(keys) if dialect == "postgresql" else json.dumps(list(keys))
    found: dict[str, Found] = {}
    result = session.execute(statement, {"keys": keys_param, **_params(question)})
    for hmac, subject_id, *state in result:
        entry = found.get(hmac)
        if entry is None:
            entry = found[hmac] = (subject_id, {})
        if state[3] is not None:
            entry[1][(state[0], state[1], state[2])] = _standing(state)
    return found


def _dialect(session: Session) -> str:
    return "postgresql" if session.get_bind().dialect.name == "postgresql" else "sqlite"


def _collect(rows: Sequence[Any]) -> dict[Key, Standing]:
    return {
        (row.channel, row.category, row.purpose): _standing(row[2:])
        for row in rows
        if row.status is not None
    }


_STATUS = {str(status): status for status in Status}


def _standing(state: Sequence[Any]) -> Standing:
    """From (channel, category, purpose, status, event_seq, event_id, occurred_at)."""
    return Standing(_STATUS[state[3]], state[4], state[6], state[5])


def _joined(wanted: Any, *, lateral: bool) -> Select[Any]:
    """For each wanted HMAC (the one column of `wanted`): its subject and its standings on
    the asked topics (one row each, or one row of NULLs).

    On PostgreSQL the standings are a LATERAL subquery, so they are always read through the
    primary key per subject, whatever the planner guesses about the topic filters.
    """
    key = wanted.c[0]
    identifiers, states = SubjectIdentifier.__table__, ConsentState.__table__
    topic_filter = and_(
        states.c.subject_id == identifiers.c.subject_id,
        states.c.channel.in_(bindparam("channels", expanding=True)),
        states.c.category.in_(bindparam("categories", expanding=True)),
        states.c.purpose.in_(bindparam("purposes", expanding=True)),
    )
    columns = ("channel", "category", "purpose", "status", "event_seq", "event_id", "occurred_at")
    if lateral:
        found: Any = (
            select(*(states.c[name] for name in columns))
            .where(topic_filter)
            .offset(0)  # a fence: PostgreSQL may not flatten it into a scan of the table
            .lateral("state")
        )
        on: Any = true()
    else:
        found, on = states, topic_filter
    return (
        select(
            key.label("hmac"),
            identifiers.c.subject_id,
            *(found.c[name] for name in columns),
        )
        .select_from(wanted)
        .outerjoin(identifiers, identifiers.c.hmac == key)
        .outerjoin(found, on)
    )


def _one_key() -> Any:
    return select(bindparam("key", type_=String(64)).label("hmac")).subquery("wanted")


# Built once at import, not per request; the driver then prepares them on the server.
_CHECK_BY_KEY = {
    "postgresql": _joined(_one_key(), lateral=True),
    "sqlite": _joined(_one_key(), lateral=False),
}
_BATCH_BY_KEYS = {
    "postgresql": _joined(
        func.unnest(bindparam("keys", type_=ARRAY(String(64))))
        .table_valued("hmac")
        .render_derived(name="wanted"),
        lateral=True,
    ),
    "sqlite": _joined(
        func.json_each(bindparam("keys", type_=String)).table_valued("value", name="wanted"),
        lateral=False,
    ),
}


def _standings(session: Session, subject_id: str, question: Question) -> dict[Key, Standing]:
    rows = session.scalars(
        select(ConsentState).where(
            ConsentState.subject_id == subject_id,
            ConsentState.channel.in_({t.channel for t in question.topics()}),
            ConsentState.category.in_({t.category for t in question.topics()}),
            ConsentState.purpose.in_({t.purpose for t in question.topics()}),
        )
    )
    return {(row.channel, row.category, row.purpose): standing_of(row) for row in rows}


def _decide(
    rules: Rules,
    question: Question,
    is_transactional: bool,
    subject_id: str | None,
    standings: dict[Key, Standing],
    now: datetime,
) -> Decision:
    if question.purpose:
        return decide_purpose(
            is_suppressed=False,
            is_known=subject_id is not None,
            purpose=standings.get(("", "", question.purpose)),
            now=now,
            max_age=rules.max_consent_age,
        )
    assert question.channel
    assert question.category
    return decide_message(
        is_transactional=is_transactional,
        is_suppressed=False,
        is_known=subject_id is not None,
        all_marketing=standings.get(("", "", "")),
        channel=standings.get((question.channel, "", "")),
        pair=standings.get((question.channel, question.category, "")),
        now=now,
        max_age=rules.max_consent_age,
    )
