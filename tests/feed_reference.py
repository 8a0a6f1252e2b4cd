"""The changes feed as it was built before the fast item builder, and a ledger holding every
kind of change: tests check the feed against both, in the service and over HTTP."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from app.domain.chain import format_time
from app.domain.changes import ITEM_COLUMNS, NOT_CHANGES
from app.domain.consent import channel_topic, pair_topic
from app.domain.rules import Rules
from app.domain.vocabulary import Action, Status
from app.models import ConsentEvent, SubjectIdentifier
from app.services.audit import checkpoints
from app.services.consent import preferences, subjects
from app.services.consent.preferences import Change
from app.services.identity import identifiers, merges
from app.services.imports import jobs
from tests.api.identity_helpers import run_imports
from tests.factories import make_act, make_subscriber


def old_items(session: Session, after: int, limit: int) -> list[dict[str, Any]]:
    """The feed page as it was built before: one join of the events with their subjects'
    identifiers, times through the UTC column type and chain.format_time, item by item."""
    events = ConsentEvent.__table__
    held = SubjectIdentifier.__table__
    page = (
        select(*(events.c[name] for name in ITEM_COLUMNS))
        .where(
            events.c.chain_id == "main",
            events.c.action.not_in([str(a) for a in NOT_CHANGES]),
            events.c.seq > after,
        )
        .order_by(events.c.seq)
        .limit(limit)
        .subquery("page")
    )
    query = (
        select(page, held.c.kind, held.c.value)
        .outerjoin(held, held.c.subject_id == page.c.subject_id)
        .order_by(page.c.seq, held.c.kind, held.c.value)
    )
    grouped: dict[int, tuple[Any, list[tuple[str, str]]]] = {}
    for row in session.execute(query).all():
        _, found = grouped.setdefault(row[0], (row[:-2], []))
        if row[-2] is not None:
            found.append((row[-2], row[-1]))
    items = []
    for event, found in grouped.values():
        seq, occurred_at, subject_id, channel, category, purpose, status, action = event
        identifiers: dict[str, list[str]] = {"email": [], "phone": [], "external_id": []}
        if action != Action.ERASE:
            for kind, value in found:
                identifiers.setdefault(kind, []).append(value)
        items.append(
            {
                "cursor": str(seq),
                "occurred_at": format_time(occurred_at),
                "subject_id": subject_id,
                "identifiers": identifiers,
                "channel": channel,
                "category": category,
                "purpose": purpose,
                "status": status,
                "action": "erased" if action == Action.ERASE else action,
            }
        )
    return items


def varied_ledger(session: Session, engine: Engine, rules: Rules, tmp_path: Path) -> None:
    """Every kind of change: requests, confirmations, grants, withdrawals, unsubscribe-all,
    links and unlinks, a merge, an erasure, an import with its consented_at, and bookkeeping,
    some at a whole second (microsecond 0)."""
    whole = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
    ada = make_subscriber(session, rules, email="ada@example.org", now=whole)
    email, news = channel_topic("email"), pair_topic("email", "newsletter")
    preferences.change(session, rules, ada, [Change(news, Status.WITHDRAWN)], make_act())
    preferences.change(session, rules, ada, [Change(news, Status.GRANTED)], make_act(), now=whole)
    phone = identifiers.link(session, rules, ada, "phone", "+14155550100", make_act())[0]
    identifiers.link(session, rules, ada, "external_id", 'crm-"Zoë"\\ü', make_act())
    identifiers.link(session, rules, ada, "email", "b-second@example.org", make_act())
    identifiers.link(session, rules, ada, "email", "a-second@example.org", make_act())
    identifiers.unlink(session, ada, phone.id, make_act())
    preferences.unsubscribe_all(session, rules, ada, make_act())
    bob = make_subscriber(session, rules, email="bob@example.org", categories=["offers"])
    merges.merge(session, rules, ada, bob, make_act(actor="admin"))
    cy = make_subscriber(session, rules, email="cy@example.org")
    preferences.change(session, rules, cy, [Change(email, Status.WITHDRAWN)], make_act())
    subjects.erase(session, rules, cy, make_act(actor="admin"))
    checkpoints.create(session, checkpoints.signing_key(tmp_path / "key.json"))
    rows = [
        {"email": "dee@example.org", "channel": "email", "category": "newsletter"}
        | {"status": "granted", "consented_at": "2021-03-04T10:00:00Z", "source": "old-crm"}
        | {"method": "double_opt_in", "external_id": "crm-9"},
        {"email": "eve@example.org", "channel": "email", "status": "withdrawn"}
        | {"consented_at": "2020-01-01T00:00:00.5Z", "source": "old-crm"},
    ]
    jobs.create(session, [json.dumps(r) + "\n" for r in rows], jobs.Format.NDJSON, actor="t")
    run_imports(engine, rules)
    session.expire_all()
