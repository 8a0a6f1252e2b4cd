"""Suppression: the one answer to "was this person erased?", asked by every path.

An erasure leaves an HMAC entry per identifier, and per mailbox for an email (so `a.b+x@…`
is held back with `ab@…`). Checks, the batch, preference views, pages, links and imports all
ask `is_suppressed` / `suppressed_keys`; only a fresh confirmed opt-in lifts an entry (`lift`).
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import String, Table, bindparam, delete, exists, or_, select
from sqlalchemy.orm import Session, aliased

from app.database import PreparedSelect, insert_many, one_of
from app.domain.identifiers import (
    MAILBOX_KIND,
    Identifier,
    identifier_hmac,
    keyed_hmacs,
    mailbox,
)
from app.domain.rules import Rules
from app.domain.vocabulary import IdentifierKind
from app.models import IdentifierVariant, Subject, SubjectIdentifier, Suppression
from app.services.consent import bulk_reads

_VARIANTS = cast(Table, IdentifierVariant.__table__)


def keys_of(rules: Rules, ident: Identifier) -> tuple[str, ...]:
    """Every suppression key an identifier answers to: its own and its mailbox's, under the
    current identifier key and each earlier one (suppressions made under them hold)."""
    return keys_under(rules.identifier_keys, ident)


def keys_under(secrets: Sequence[bytes], ident: Identifier) -> tuple[str, ...]:
    """`keys_of` under a ring of keys (`Rules.identifier_keys`)."""
    keys: list[str] = []
    for secret in secrets:
        keys.append(ident.key(secret))
        mailbox_key = ident.mailbox_key(secret)
        if mailbox_key:
            keys.append(mailbox_key)
    return tuple(keys)


def email_keys_of(rules: Rules, normalized_emails: list[str]) -> list[tuple[str, ...]]:
    """`keys_of` for many normalised emails (the batch check), the keyed state made once."""
    return many_keys_of(rules, IdentifierKind.EMAIL, normalized_emails)


def many_keys_of(rules: Rules, kind: str, values: list[str]) -> list[tuple[str, ...]]:
    """`keys_of` for many normalised identifiers of one kind, in the same order."""
    per_secret: list[list[str]] = []
    for secret in rules.identifier_keys:
        per_secret.append(keyed_hmacs(secret, kind, values))
        if kind == IdentifierKind.EMAIL:
            per_secret.append(keyed_hmacs(secret, MAILBOX_KIND, [mailbox(v) for v in values]))
    return list(zip(*per_secret, strict=True)) if values else []


def suppressed_keys(session: Session, keys: Collection[str]) -> set[str]:
    """Those of `keys` under an unlifted suppression: one indexed read however many."""
    if not keys:
        return set()
    return set(
        session.scalars(
            select(Suppression.hmac).where(
                one_of(session, Suppression.hmac, list(keys)), Suppression.lifted_at.is_(None)
            )
        )
    )


def is_suppressed(
    session: Session,
    rules: Rules,
    *,
    ident: Identifier | None = None,
    subject_id: str | None = None,
) -> bool:
    """Whether this identifier, or this subject, must not be contacted. Give one or both.

    One statement (`columns`): the identifier's `keys_of` under suppression, the subject
    erased, or an identifier the subject holds under suppression by its own HMAC or by a
    stored variant (`IdentifierVariant`, under this ring). Only when one of the subject's
    identifiers has no variants stored under this ring, and nothing was found, are its
    identifiers read and keyed in Python (`suppressed_subjects`): the same answer either way.
    The single check asks the same `columns` inside its own read.
    """
    (row,) = _ONE_READ.rows(session, params(rules, ident) | {"subject_id": subject_id})
    return answer(session, rules, subject_id, held=row.held, unkeyed=row.unkeyed)


def columns(subject_id: Any) -> tuple[Any, Any]:
    """`held` and `unkeyed` for the subject whose id is the expression `subject_id` (a
    bound parameter, or a column of a read that finds the subject), with `params` bound:
    `answer` turns them into `is_suppressed`'s answer. The tables are aliased, so the
    subqueries never correlate with the tables of the read they are put in."""
    entries, people = aliased(Suppression), aliased(Subject)
    held_ids, variants = aliased(SubjectIdentifier), aliased(IdentifierVariant)
    in_force = entries.lifted_at.is_(None)
    ring = bindparam("s_ring", type_=String)
    by_key = exists().where(entries.hmac.in_(bindparam("s_keys", expanding=True)), in_force)
    erased = exists().where(people.id == subject_id, people.erased_at.is_not(None))
    own = exists().where(held_ids.subject_id == subject_id, entries.hmac == held_ids.hmac, in_force)
    variant = exists().where(
        held_ids.subject_id == subject_id,
        variants.identifier_hmac == held_ids.hmac,
        variants.ring == ring,
        entries.hmac == variants.key,
        in_force,
    )
    unkeyed = exists().where(
        held_ids.subject_id == subject_id,
        held_ids.kind.in_(bindparam("s_kinds", expanding=True)),
        ~exists().where(variants.identifier_hmac == held_ids.hmac, variants.ring == ring),
    )
    return or_(by_key, erased, own, variant).label("held"), unkeyed.label("unkeyed")


def params(rules: Rules, ident: Identifier | None) -> dict[str, Any]:
    """The parameters `columns` reads: `ident`'s keys (none without one) and the ring."""
    keys = list(keys_of(rules, ident)) if ident is not None else []
    return {"s_keys": keys, "s_ring": ring_of(rules), "s_kinds": _KIND_LIST}


def answer(
    session: Session, rules: Rules, subject_id: str | None, *, held: bool, unkeyed: bool
) -> bool:
    """`is_suppressed` from what `columns` read for `subject_id`: held, or else, when an
    identifier of the subject has no variants stored under this ring, keyed in Python."""
    if held:
        return True
    return bool(unkeyed) and bool(suppressed_subjects(session, rules, [str(subject_id)]))


def ring_of(rules: Rules) -> str:
    """A name for the ring of identifier keys (none of them can be learnt from it)."""
    return ring_name(rules.identifier_keys)


@functools.cache
def ring_name(secrets: tuple[bytes, ...]) -> str:
    """`ring_of` a ring of keys (`Rules.identifier_keys`)."""
    names = [identifier_hmac(secret, "ring", "identifier-variants") for secret in secrets]
    return identifier_hmac(b"ring", "ring", " ".join(names))[:16]


def store_variants(session: Session, rules: Rules, rows: Iterable[tuple[str, str, str]]) -> None:
    """Store the variant keys of identifiers (hmac, kind, value) being made, in the caller's
    transaction, so that `is_suppressed` reads them in its one statement."""
    store_keys(
        session,
        rules,
        (
            (hmac_, keys_of(rules, Identifier(IdentifierKind(kind), value)))
            for hmac_, kind, value in rows
            if kind in KINDS
        ),
    )


def store_keys(session: Session, rules: Rules, keyed: Iterable[tuple[str, Sequence[str]]]) -> None:
    """Store identifiers' variant keys (hmac, its `keys_of`), for identifiers of `KINDS` being
    made. A new identifier has none stored (they go with it, `IdentifierVariant`), so they are
    inserted in bulk, with no read first."""
    ring = ring_of(rules)
    entries = [
        {"identifier_hmac": hmac_, "ring": ring, "key": key}
        for hmac_, keys in keyed
        for key in dict.fromkeys(keys)
    ]
    if entries:
        session.flush()  # the identifiers they name, where the ORM holds them still
        insert_many(session, _VARIANTS, entries)


@dataclass(frozen=True)
class Filled:
    identifiers: int


def fill_variants(session: Session, rules: Rules, *, batch: int = 1000) -> Filled:
    """Store the variants of every identifier that has none under this ring (those made
    before migration 0012, or before the ring changed), and drop those of other rings."""
    ring = ring_of(rules)
    filled = 0
    while True:
        rows = [
            (row.hmac, row.kind, row.value)
            for row in session.execute(
                select(SubjectIdentifier.hmac, SubjectIdentifier.kind, SubjectIdentifier.value)
                .where(SubjectIdentifier.kind.in_(_KIND_LIST), _unkeyed(SubjectIdentifier, ring))
                .limit(batch)
            )
        ]
        if not rows:
            break
        store_variants(session, rules, rows)
        session.flush()
        filled += len(rows)
    session.execute(delete(IdentifierVariant).where(IdentifierVariant.ring != ring))
    session.commit()
    return Filled(filled)


def _unkeyed(identifiers: Any, ring: Any) -> Any:
    return ~exists().where(
        IdentifierVariant.identifier_hmac == identifiers.hmac, IdentifierVariant.ring == ring
    )


def suppressed_subjects(session: Session, rules: Rules, subject_ids: Collection[str]) -> set[str]:
    """Those subjects that were erased or hold an identifier under suppression (a person who
    came back by the erased address is not contacted by any other path until confirmed)."""
    if not subject_ids:
        return set()
    ids = list(subject_ids)
    erased = select(Subject.id).where(Subject.id.in_(ids), Subject.erased_at.is_not(None))
    found = set(session.scalars(erased))
    rows = list(
        session.scalars(select(SubjectIdentifier).where(SubjectIdentifier.subject_id.in_(ids)))
    )
    owned = [(row.subject_id, _stored_keys(rules, row)) for row in rows]
    hit = suppressed_keys(session, [key for _, row_keys in owned for key in row_keys])
    found.update(owner for owner, row_keys in owned if hit.intersection(row_keys))
    return found


def _stored_keys(rules: Rules, row: SubjectIdentifier) -> tuple[str, ...]:
    if row.kind in KINDS:
        return (row.hmac, *keys_of(rules, Identifier(IdentifierKind(row.kind), row.value)))
    return (row.hmac,)


# The kinds with suppression variants stored (the catalog's own kinds are keyed by HMAC alone).
KINDS = frozenset(IdentifierKind)
_KIND_LIST = sorted(KINDS)


_ONE_READ = PreparedSelect(select(*columns(bindparam("subject_id", type_=String))))


def held_back_in_batch(
    session: Session, rules: Rules, emails: list[str], subject_ids: Collection[str]
) -> tuple[set[str], set[str]]:
    """For the batch check: which of the normalised `emails` are held back (`suppressed_keys`
    of their `keys_of`), and which of the subjects found (`suppressed_subjects`, but for
    erasure, which the batch reads with the subject).

    One read, and nothing keyed, when no suppression is in force. Else the subjects'
    identifiers are read and keyed, and matched against the entries in force, read whole
    when they are few (up to `IN_MEMORY`), else looked up with the keys as one parameter.
    """
    in_force = set(session.scalars(_IN_FORCE.limit(IN_MEMORY + 1)))
    if not in_force:
        return set(), set()
    entry_keys = email_keys_of(rules, emails)
    keys_by_email = dict(zip(emails, entry_keys, strict=True))
    rows = list(bulk_reads.fetch(session, _IDENTIFIERS_OF, {"ids": list(subject_ids)}))
    unkeyed: dict[str, list[str]] = {}  # by kind: the values not keyed yet
    for _, _, kind, value in rows:
        if kind in KINDS and not (kind == IdentifierKind.EMAIL and value in keys_by_email):
            unkeyed.setdefault(kind, []).append(value)
    keyed = {
        (kind, value): keys
        for kind, values in unkeyed.items()
        for value, keys in zip(values, many_keys_of(rules, kind, values), strict=True)
    }
    owned: list[tuple[str, tuple[str, ...]]] = []
    for subject_id, hmac, kind, value in rows:
        if kind == IdentifierKind.EMAIL and value in keys_by_email:
            owned.append((subject_id, (hmac, *keys_by_email[value])))
        else:
            owned.append((subject_id, (hmac, *keyed.get((kind, value), ()))))
    if len(in_force) > IN_MEMORY:
        wanted = {key for keys in entry_keys for key in keys}
        wanted.update(key for _, keys in owned for key in keys)
        in_force = {row[0] for row in bulk_reads.fetch(session, _IN_FORCE_AMONG, {"keys": wanted})}
    return (
        {
            email
            for email, keys in zip(emails, entry_keys, strict=True)
            if not in_force.isdisjoint(keys)
        },
        {owner for owner, keys in owned if not in_force.isdisjoint(keys)},
    )


IN_MEMORY = 20_000
_IN_FORCE = select(Suppression.hmac).where(Suppression.lifted_at.is_(None))
_IDENTIFIERS_OF = bulk_reads.Statement(
    "SELECT i.subject_id, i.hmac, i.kind, i.value FROM EACH(:ids) AS w"
    " JOIN subject_identifiers i ON i.subject_id = w.value"
)
_IN_FORCE_AMONG = bulk_reads.Statement(
    "SELECT s.hmac FROM EACH(:keys) AS w JOIN suppressions s ON s.hmac = w.value"
    " WHERE s.lifted_at IS NULL"
)


def suppress(
    session: Session, rules: Rules, identifiers: Iterable[SubjectIdentifier], *, now: datetime
) -> None:
    """Enter (or renew) the entries of identifiers being erased, in the caller's transaction."""
    for row in identifiers:
        entries = {row.hmac: row.kind}
        if row.kind == IdentifierKind.EMAIL:
            ident = Identifier(IdentifierKind.EMAIL, row.value)
            entries[str(ident.mailbox_key(rules.identifier_key))] = MAILBOX_KIND
        for key, kind in entries.items():
            entry = session.get(Suppression, key)
            if entry is None:
                session.add(Suppression(hmac=key, kind=kind, created_at=now))
            else:
                entry.created_at, entry.lifted_at = now, None


def lift(session: Session, rules: Rules, identifier_hmac: str, *, now: datetime) -> bool:
    """Lift the entries of a freshly confirmed identifier (its own and its mailbox's), in the
    caller's transaction. Returns whether anything was lifted."""
    row = session.get(SubjectIdentifier, identifier_hmac)
    keys = _stored_keys(rules, row) if row is not None else (identifier_hmac,)
    lifted = False
    for key in suppressed_keys(session, keys):
        entry = session.get(Suppression, key)
        assert entry is not None
        entry.lifted_at = now
        lifted = True
    return lifted
