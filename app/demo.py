"""Demo data: subjects in every state the check can answer, made through the services."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from app.domain.consent import Topic
from app.domain.identifiers import identifier
from app.domain.rules import Rules
from app.domain.vocabulary import ALL_SCOPES, IdentifierKind, Method, Status
from app.services import clients
from app.services.consent import preferences, subjects
from app.services.consent.ledger import Act
from app.services.optin import confirmation, subscriptions
from app.services.optin.subscriptions import OptIn

STORY = (
    "granted",  # confirmed newsletter and offers by email, personalization granted
    "pending",  # asked for the newsletter, never clicked the link
    "withdrawn",  # confirmed, then withdrew offers
    "unsubscribed_all",  # confirmed, then unsubscribed from everything
    "sms",  # opted into offers by SMS
)


def seed(session: Session, rules: Rules, *, count: int = 25) -> dict[str, Any]:
    credentials = clients.create(session, "demo", sorted(ALL_SCOPES))
    act = Act(
        actor="admin:demo",
        method=Method.FORM,
        source="demo-seed",
        locale="en",
        notice_version="2026-11-01",
        ip="192.0.2.10",
        user_agent="Mozilla/5.0 (demo)",
    )
    made: dict[str, list[str]] = {name: [] for name in STORY}
    for n in range(count):
        story = STORY[n % len(STORY)]
        email = f"demo{n + 1}@example.org"
        if story == "sms":
            ident = identifier(IdentifierKind.PHONE, f"+4915112345{n:03d}")
            requested = subscriptions.request(session, rules, OptIn(ident, "sms", ["offers"]), act)
            made[story].append(f"+4915112345{n:03d}")
            continue
        ident = identifier(IdentifierKind.EMAIL, email)
        requested = subscriptions.request(
            session, rules, OptIn(ident, "email", ["newsletter", "offers"]), act
        )
        made[story].append(email)
        if story == "pending" or requested.request is None:
            continue
        confirmation.confirm_request(session, rules, requested.request.id, act)
        if story == "granted":
            preferences.change(
                session,
                rules,
                requested.subject_id,
                [preferences.Change(Topic(purpose="personalization"), Status.GRANTED)],
                act,
            )
        elif story == "withdrawn":
            preferences.change(
                session,
                rules,
                requested.subject_id,
                [preferences.Change(Topic("email", "offers"), Status.WITHDRAWN)],
                act,
            )
        elif story == "unsubscribed_all":
            preferences.unsubscribe_all(session, rules, requested.subject_id, act)
    erased = subjects.find(session, rules, IdentifierKind.EMAIL, made["withdrawn"][-1])
    subjects.erase(session, rules, erased.id, Act(actor="admin:demo", method=Method.ADMIN))
    made["erased (suppressed)"] = [made["withdrawn"].pop()]
    return {
        "client": credentials.__dict__,
        "subjects": made,
        "try": "curl -s -u CLIENT_ID:CLIENT_SECRET -d grant_type=client_credentials "
        "http://localhost:5000/oauth/token",
    }
