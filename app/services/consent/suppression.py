"""Suppression: the one answer to "was this person erased?", asked by every path.

An erasure leaves an HMAC entry per identifier, and per mailbox for an email (so `a.b+x@…`
is held back with `ab@…`). Checks, the batch, preference views, pages, links and imports all
ask `is_suppressed` / `suppressed_keys`; only a fresh confirmed opt-in lifts an entry (`lift`).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.domain.identifiers import MAILBOX_KIND, Identifier, keyed_hmacs, mailbox
from app.domain.rules import Rules
from app.domain.vocabulary import IdentifierKind
from app.models import Subject, SubjectIdentifier, Suppression
from app.services.consent import bulk_reads


def keys_of(rules: Rules, ident: Identifier) -> tuple[str, ...]:
    """Every suppression key an identifier answers to: its own and its mailbox's, under the
    current identifier key and each earlier one (suppressions made under them hold)."""
    keys: list[str] = []
    for secret in rules.identifier_keys:
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
                Suppression.hmac.in_(list(keys)), Suppression.lifted_at.is_(None)
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
    """Whether this identifier, or this subject, must not be contacted. Give one or both."""
    keys = keys_of(rules, ident) if ident is not None else ()
    if suppressed_keys(session, keys):
        return True
    return subject_id is not None and bool(suppressed_subjects(session, rules, [subject_id]))


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
    if row.kind in _KINDS:
        return (row.hmac, *keys_of(rules, Identifier(IdentifierKind(row.kind), row.value)))
    return (row.hmac,)


_KINDS = frozenset(IdentifierKind)


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
        if kind in _KINDS and not (kind == IdentifierKind.EMAIL and value in keys_by_email):
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
