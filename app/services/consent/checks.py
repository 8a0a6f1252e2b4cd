"""The consent check: the hot path. One indexed read by the identifier's HMAC, a pure decision."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

from sqlalchemy import Select, String, and_, bindparam, exists, select, true
from sqlalchemy.orm import Session

from app.database import PreparedSelect
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
from app.domain.identifiers import Identifier, normalize_email, own_email_keys
from app.domain.identity import CONTACT_KIND, Held, contact_for
from app.domain.rules import Rules
from app.domain.vocabulary import IdentifierKind, Reason, Status
from app.models import ConsentState, Subject, SubjectIdentifier, SubscriptionRequest, utcnow
from app.services.consent import bulk_reads, suppression
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
    contact: str | None = None  # the address or number that may be used, when one may
    is_for_person: bool = False  # asked by subject or external id: `contact` is the answer


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
    """The decision for an address or number (`ident` of the channel's kind), or for a person
    (`subject_id`, `external_id`, ...), naming then the contact point that may be used."""
    is_transactional = validate(rules, question)
    now = now or utcnow()
    confirmed: bool | None = None
    found_key = ident.key(rules.identifier_key) if ident is not None else ""
    is_for_person = ident is None or ident.kind not in (IdentifierKind.EMAIL, IdentifierKind.PHONE)
    contact_kind = CONTACT_KIND.get(question.channel or "") if not question.purpose else None
    contacts: list[_Contact] | None = None
    held: HeldRead | None = None  # suppression's columns, when the read below carried them
    if ident is not None and is_for_person and contact_kind is not None:
        # One round trip for the person and their contact points: as fast as a check by email.
        subject_id, standings, contacts, held = _person_by_key(
            session, rules, ident, question, contact_kind
        )
    elif ident is not None:
        for key in ident.keys(rules.identifier_keys):  # old keys only while nothing is found
            subject_id, standings, confirmed, held = _by_key(session, rules, ident, key, question)
            found_key = key
            if subject_id is not None:
                break
    else:
        subject = _survivor(session, subject_id) if subject_id else None
        subject_id = subject.id if subject is not None else None
        standings = {} if subject_id is None else _standings(session, subject_id, question)
    if (
        suppression.is_suppressed(session, rules, ident=ident, subject_id=subject_id)
        if held is None
        else suppression.answer(session, rules, subject_id, held=held.held, unkeyed=held.unkeyed)
    ):
        return Answer(SUPPRESSED, subject_id)
    decision = _decide(rules, question, is_transactional, subject_id, standings, now)
    if subject_id is None or question.purpose:
        return Answer(decision, subject_id, is_for_person=is_for_person)
    if ident is not None and CONTACT_KIND.get(question.channel or "") == ident.kind:
        if decision.allowed and not is_transactional and not confirmed:
            decision = _unconfirmed(session, rules, question, {found_key}, decision)
        contact = ident.value if decision.allowed else None
        return Answer(decision, subject_id, contact, is_for_person=is_for_person)
    return _for_person(session, rules, question, subject_id, decision, is_transactional, contacts)


def _survivor(session: Session, subject_id: str) -> Subject | None:
    subject = session.get(Subject, subject_id)
    for _ in range(32):
        if subject is None or subject.merged_into is None:
            break
        subject = session.get(Subject, subject.merged_into)
    return subject


def _unconfirmed(
    session: Session, rules: Rules, question: Question, keys: set[str], allowed: Decision
) -> Decision:
    """An allowed answer for addresses none of which was confirmed itself: still allowed where
    double opt-in does not apply, else pending (a confirmation awaits) or no record."""
    row = session.execute(
        select(Subject.country, SubjectIdentifier.hmac)
        .join(Subject, Subject.id == SubjectIdentifier.subject_id)
        .where(SubjectIdentifier.hmac.in_(keys))
        .limit(1)
    ).first()
    if row is not None and not rules.needs_double_opt_in(question.channel or "", row.country):
        return allowed
    is_pending = session.scalar(
        select(
            exists().where(
                SubscriptionRequest.identifier_hmac.in_(keys),
                SubscriptionRequest.confirmed_at.is_(None),
            )
        )
    )
    return Decision(False, Reason.PENDING_CONFIRMATION if is_pending else Reason.NO_RECORD)


def _for_person(
    session: Session,
    rules: Rules,
    question: Question,
    subject_id: str,
    decision: Decision,
    is_transactional: bool,
    contacts: list[_Contact] | None,
) -> Answer:
    kind = CONTACT_KIND.get(question.channel or "")
    if kind is None:
        return Answer(decision, subject_id, is_for_person=True)
    rows = contacts
    if rows is None:
        rows = [
            _Contact(*row)
            for row in session.execute(
                select(
                    SubjectIdentifier.hmac,
                    SubjectIdentifier.kind,
                    SubjectIdentifier.value,
                    SubjectIdentifier.confirmed_at,
                    SubjectIdentifier.created_at,
                    Subject.country,
                )
                .join(Subject, Subject.id == SubjectIdentifier.subject_id)
                .where(SubjectIdentifier.subject_id == subject_id, SubjectIdentifier.kind == kind)
            )
        ]
    country = rows[0].country if rows else None
    needs_confirmation = not is_transactional and rules.needs_double_opt_in(
        question.channel or "", country
    )
    held = [Held(r.kind, r.value, r.confirmed_at, r.created_at) for r in rows]
    best, has_kind = contact_for(question.channel, held, needs_confirmation=needs_confirmation)
    if not decision.allowed:
        return Answer(decision, subject_id, is_for_person=True)
    if best is not None:
        return Answer(decision, subject_id, best.value, is_for_person=True)
    if not has_kind:  # the number or address is held elsewhere: nothing here to name
        return Answer(decision, subject_id, is_for_person=True)
    keys = {r.hmac for r in rows if r.kind == kind}
    return Answer(
        _unconfirmed(session, rules, question, keys, decision), subject_id, is_for_person=True
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
    """Decide for many emails; results in input order. An entry that is not an address is
    answered in place (`invalid_identifier`). See `decide_emails`."""
    decisions = decide_emails(session, rules, question, emails, now=now)
    return [BatchResult(email, d) for email, d in zip(emails, decisions, strict=True)]


def decide_emails(
    session: Session,
    rules: Rules,
    question: Question,
    emails: Sequence[str],
    *,
    now: datetime | None = None,
) -> list[Decision]:
    """The decision for each of many emails, in input order, as `check` takes it for one.

    Each distinct address is keyed once and looked up in one set-based read that returns only
    what the decision reads. The decision is taken once per distinct standing (the statuses,
    whether the pair's grant is older than "unsubscribe from all", whether it expired), by the
    same `_decide` as the single check, and shared by every address in that standing; so a
    batch answer carries no `event_id` (`Decision.event_id` is None here).
    """
    is_transactional = validate(rules, question)
    now = now or utcnow()
    normal_form: dict[str, str | None] = {}  # each distinct entry normalised once
    for raw in emails:
        if raw not in normal_form:
            try:
                normal_form[raw] = normalize_email(raw)
            except InvalidIdentifierError:
                normal_form[raw] = None
    normalized = [normal_form[raw] for raw in emails]
    values = [v for v in dict.fromkeys(normal_form.values()) if v is not None]
    reads = _BatchReads(session, rules, question, now)
    rows = reads.by_keys(own_email_keys(rules.identifier_key, values))  # the current key's
    # Key rotation: look again, under each earlier key, for what is still unknown.
    for secret in rules.identifier_old_keys:
        unknown = [i for i, row in enumerate(rows) if row[_SUBJECT] is None]
        if not unknown:
            break
        again = reads.by_keys(own_email_keys(secret, [values[i] for i in unknown]))
        for i, row in zip(unknown, again, strict=True):
            if row[_SUBJECT] is not None:
                rows[i] = row
    held_values, held_subjects = suppression.held_back_in_batch(
        session, rules, values, {row[_SUBJECT] for row in rows if row[_SUBJECT] is not None}
    )
    decided: dict[tuple[Any, ...], Decision] = {}
    unconfirmed: dict[str, Decision] = {}
    needs_confirmation = not is_transactional and question.channel == "email"
    of_value: dict[str, Decision] = {}
    for value, row in zip(values, rows, strict=True):
        if row[_ERASED] or row[_SUBJECT] in held_subjects or value in held_values:
            of_value[value] = SUPPRESSED
            continue
        standing = row[_STANDING : reads.detail]  # what determines the decision, and only that
        decision = decided.get(standing)
        if decision is None:
            decision = decided[standing] = reads.decide(is_transactional, row)
        if decision.allowed and needs_confirmation and not row[_CONFIRMED]:
            stored = row[_HMAC]
            if stored not in unconfirmed:
                unconfirmed[stored] = _unconfirmed(session, rules, question, {stored}, decision)
            decision = unconfirmed[stored]
        of_value[value] = decision
    return [INVALID_IDENTIFIER if v is None else of_value[v] for v in normalized]


# The batch read's row: the HMAC it was found under, the subject (None: unknown), whether
# the address is confirmed itself, whether the subject was erased; then the standing (known,
# one status per topic, the pair's grant older than "unsubscribe from all", the grant
# expired), then what `_decide` reads besides (each topic's event sequence, the grant's time).
_HMAC, _SUBJECT, _CONFIRMED, _ERASED, _STANDING = 0, 1, 2, 3, 4


def _batch_statement(topics: int) -> bulk_reads.Statement:
    return bulk_reads.Statement(_batch_sql(topics, lateral=False), _batch_sql(topics, lateral=True))


def _batch_sql(topics: int, *, lateral: bool) -> str:
    """The standings of each key's subject on the asked topics, `t0.status`, `t0.event_seq`,
    `t0.occurred_at`, `t1.…` for each topic.

    SQLite: a join per topic. PostgreSQL: one LATERAL subquery per subject, which reads the
    subject's few state rows in one range of the primary key and picks each topic's row out
    of them (`FILTER`; a topic has at most one): read through the key whatever the planner
    guesses about the topic filters (a hash join over the whole table is cheap at 10k
    subjects, not at 1M), and one index descent per subject, not one per topic."""
    names = ("status", "event_seq", "occurred_at")

    def topic(n: int, alias: str = "") -> str:
        return (
            f"{alias}channel = :channel{n} AND {alias}category = :category{n}"
            f" AND {alias}purpose = :purpose{n}"
        )

    if lateral:
        picked = ", ".join(
            f"max({name}) FILTER (WHERE {topic(n)}) AS {name}{n}"
            for n in range(topics)
            for name in names
        )
        joins = (
            f" LEFT JOIN LATERAL (SELECT {picked} FROM consent_state"
            " WHERE subject_id = i.subject_id) t ON true"
        )
        column = "t.{name}{n}".format
    else:
        joins = " ".join(
            f"LEFT JOIN consent_state t{n} ON t{n}.subject_id = i.subject_id"
            f" AND {topic(n, f't{n}.')}"
            for n in range(topics)
        )
        column = "t{n}.{name}".format
    last = topics - 1
    older = (
        f"{column(name='event_seq', n=last)} < {column(name='event_seq', n=0)}"
        if topics > 1
        else "NULL"
    )
    statuses = ", ".join(column(name="status", n=n) for n in range(topics))
    seqs = ", ".join(column(name="event_seq", n=n) for n in range(topics))
    granted_at = column(name="occurred_at", n=last)
    return (
        f"SELECT w.value, i.subject_id, i.confirmed_at IS NOT NULL, s.erased_at IS NOT NULL,"
        f" i.subject_id IS NOT NULL, {statuses}, {older}, {granted_at} < :cutoff,"
        f" {seqs}, {granted_at}"
        f" FROM EACH(:keys) AS w"
        f" LEFT JOIN subject_identifiers i ON i.hmac = w.value"
        f" LEFT JOIN subjects s ON s.id = i.subject_id " + joins
    )


# By the number of topics asked: three for a message (all marketing, channel, pair), one for
# a purpose.
_BATCH_BY_KEYS = {topics: _batch_statement(topics) for topics in (1, 3)}


class _BatchReads:
    """The batch's read and its decision per standing, for one question."""

    def __init__(self, session: Session, rules: Rules, question: Question, now: datetime) -> None:
        self.session, self.rules, self.question, self.now = session, rules, question, now
        self.topics = question.topics()
        self.statement = _BATCH_BY_KEYS[len(self.topics)]
        self.params: dict[str, Any] = {"cutoff": None}
        for n, topic in enumerate(self.topics):
            self.params |= {
                f"channel{n}": topic.channel,
                f"category{n}": topic.category,
                f"purpose{n}": topic.purpose,
            }
        if rules.max_consent_age is not None:
            cutoff = self.now - rules.max_consent_age
            is_sqlite = bulk_reads.dialect(session) == "sqlite"
            # SQLite stores naive UTC text in SQLAlchemy's form, which sorts as time does.
            self.params["cutoff"] = (
                cutoff.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")
                if is_sqlite
                else cutoff
            )
        n = len(self.topics)
        self.detail = _STANDING + 1 + n + 2  # where the sequences begin
        self.width = self.detail + n + 1

    def by_keys(self, keys: list[str]) -> list[Any]:
        """One row per key, in the order of `keys` (an unknown key: a row of NULLs)."""
        found = {
            row[_HMAC]: row
            for row in bulk_reads.fetch(self.session, self.statement, self.params | {"keys": keys})
        }
        missing = (None, False, False, False) + (None,) * (self.width - 5)
        return [found.get(key) or (key, *missing) for key in keys]

    def decide(self, is_transactional: bool, row: Sequence[Any]) -> Decision:
        """`_decide` for the standing of `row`, from the row's own standings."""
        n = len(self.topics)
        statuses = row[_STANDING + 1 : _STANDING + 1 + n]
        seqs = row[self.detail : self.detail + n]
        standings: dict[Key, Standing] = {}
        for topic, status, seq in zip(self.topics, statuses, seqs, strict=True):
            if status is not None:
                # Only the grant's (the last topic's) time is read by the decision: the
                # others are not fetched.
                at = row[self.detail + n] if topic is self.topics[-1] else self.now
                standings[(topic.channel, topic.category, topic.purpose)] = Standing(
                    _STATUS[status], seq, _aware(at), ""
                )
        subject_id = row[_SUBJECT]
        decision = _decide(
            self.rules, self.question, is_transactional, subject_id, standings, self.now
        )
        return Decision(decision.allowed, decision.reason)


def _aware(moment: datetime | str) -> datetime:
    """A stored time as the ORM reads it: SQLite's naive UTC text, PostgreSQL's aware value."""
    if isinstance(moment, str):
        return datetime.fromisoformat(moment).replace(tzinfo=UTC)
    return moment.astimezone(UTC)


# Standings keyed by (channel, category, purpose): plain tuples hash faster than Topic.
Key = tuple[str, str, str]


@functools.lru_cache(maxsize=1024)  # questions of the catalog's topics: `validate` came first
def _params(question: Question) -> dict[str, Any]:
    """The topic lists a read's IN filters take (shared between calls: read, never changed)."""
    topics = question.topics()
    return {
        "channels": sorted({t.channel for t in topics}),
        "categories": sorted({t.category for t in topics}),
        "purposes": sorted({t.purpose for t in topics}),
    }


def _by_key(
    session: Session, rules: Rules, ident: Identifier, key: str, question: Question
) -> tuple[str | None, dict[Key, Standing], bool, HeldRead]:
    """Subject and the asked standings of one identifier HMAC, and suppression's columns
    for `ident` and that subject: one indexed read."""
    read = _CHECK_BY_KEY[_dialect(session)]
    params = {"key": key, **_params(question), **suppression.params(rules, ident)}
    rows = read.rows(session, params)
    held = HeldRead(bool(rows[0].held), bool(rows[0].unkeyed))
    return rows[0].subject_id, _collect(rows), bool(rows[0].is_confirmed), held


class HeldRead(NamedTuple):
    """`suppression.columns` as a check's read returned them."""

    held: bool
    unkeyed: bool


def _dialect(session: Session) -> str:
    return "postgresql" if session.get_bind().dialect.name == "postgresql" else "sqlite"


def _collect(rows: Sequence[Any]) -> dict[Key, Standing]:
    return {
        (row.channel, row.category, row.purpose): _standing(row[3:])
        for row in rows
        if row.status is not None
    }


_STATUS = {str(status): status for status in Status}


def _standing(state: Sequence[Any]) -> Standing:
    """From (channel, category, purpose, status, event_seq, event_id, occurred_at)."""
    return Standing(_STATUS[state[3]], state[4], state[6], state[5])


def _person_of(wanted: Any) -> Any:
    """The subject of the wanted HMAC (the one column of `wanted`), and suppression's columns
    for it: one row, a subquery the database may not merge into the read around it (OFFSET
    0), so the suppression subqueries run once, not once per standing read with it."""
    key = wanted.c[0]
    identifiers = SubjectIdentifier.__table__
    return (
        select(
            key.label("hmac"),
            identifiers.c.subject_id,
            identifiers.c.confirmed_at.is_not(None).label("is_confirmed"),
            *suppression.columns(identifiers.c.subject_id),
        )
        .select_from(wanted)
        .outerjoin(identifiers, identifiers.c.hmac == key)
        .offset(0)
        .subquery("person")
    )


def _joined(person: Any, *, lateral: bool) -> Select[Any]:
    """For the `person` (`_person_of`): its standings on the asked topics (one row each, or
    one row of NULLs).

    On PostgreSQL the standings are a LATERAL subquery, so they are always read through the
    primary key per subject, whatever the planner guesses about the topic filters.
    """
    states = ConsentState.__table__
    topic_filter = and_(
        states.c.subject_id == person.c.subject_id,
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
            person.c.hmac,
            person.c.subject_id,
            person.c.is_confirmed,
            *(found.c[name] for name in columns),
            person.c.held,
            person.c.unkeyed,
        )
        .select_from(person)
        .outerjoin(found, on)
    )


class _Contact(NamedTuple):
    hmac: str
    kind: str
    value: str
    confirmed_at: datetime | None
    created_at: datetime
    country: str | None


def _person_by_key(
    session: Session, rules: Rules, ident: Identifier, question: Question, contact_kind: str
) -> tuple[str | None, dict[Key, Standing], list[_Contact], HeldRead]:
    """As `_by_key`, with the subject's identifiers of `contact_kind` in the same read."""
    read = _PERSON_BY_KEY[_dialect(session)]
    key = ident.key(rules.identifier_key)
    params = {"key": key, "contact_kind": contact_kind, **_params(question)}
    params |= suppression.params(rules, ident)
    rows = read.rows(session, params)
    contacts = {
        row.c_hmac: _Contact(
            row.c_hmac, contact_kind, row.c_value, row.c_confirmed_at, row.c_created_at, row.country
        )
        for row in rows
        if row.c_hmac is not None
    }
    held = HeldRead(bool(rows[0].held), bool(rows[0].unkeyed))
    return rows[0].subject_id, _collect(rows), list(contacts.values()), held


def _person(wanted: Any, *, lateral: bool) -> Select[Any]:
    person = _person_of(wanted)
    contact = SubjectIdentifier.__table__.alias("contact")
    subjects = Subject.__table__
    return (
        _joined(person, lateral=lateral)
        .add_columns(
            contact.c.hmac.label("c_hmac"),
            contact.c.value.label("c_value"),
            contact.c.confirmed_at.label("c_confirmed_at"),
            contact.c.created_at.label("c_created_at"),
            subjects.c.country,
        )
        .outerjoin(
            contact,
            and_(
                contact.c.subject_id == person.c.subject_id,
                contact.c.kind == bindparam("contact_kind"),
            ),
        )
        .outerjoin(subjects, subjects.c.id == person.c.subject_id)
    )


def _one_key() -> Any:
    return select(bindparam("key", type_=String(64)).label("hmac")).subquery("wanted")


# Built and compiled once, not per request; the driver then prepares them on the server.
_CHECK_BY_KEY = {
    "postgresql": PreparedSelect(_joined(_person_of(_one_key()), lateral=True)),
    "sqlite": PreparedSelect(_joined(_person_of(_one_key()), lateral=False)),
}
_PERSON_BY_KEY = {
    "postgresql": PreparedSelect(_person(_one_key(), lateral=True)),
    "sqlite": PreparedSelect(_person(_one_key(), lateral=False)),
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
