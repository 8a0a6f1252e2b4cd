"""The same confirmation posted twice at once records one confirmation, never two."""

from __future__ import annotations

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from app.domain.identifiers import identifier
from app.domain.rules import Rules
from app.domain.vocabulary import Action, IdentifierKind
from app.models import ConsentEvent
from app.services.audit import trail
from app.services.optin import confirmation, subscriptions
from tests.concurrency import at_once
from tests.factories import make_act


def test_the_same_confirmation_posted_twice_at_once_writes_one_confirmation(
    clean_db: Engine, rules: Rules
) -> None:
    with Session(clean_db) as session:
        requested = subscriptions.request(
            session,
            rules,
            subscriptions.OptIn(
                identifier(IdentifierKind.EMAIL, "race@example.org"),
                "email",
                ["newsletter", "offers"],
            ),
            make_act(),
        )
        assert requested.request is not None
        request_id = requested.request.id

    def confirm() -> None:
        with Session(clean_db) as session:
            confirmation.confirm_request(session, rules, request_id, make_act(actor="subject"))

    at_once(confirm, confirm)  # raises what either confirmation raised
    with Session(clean_db) as session:
        confirmations = session.execute(
            select(ConsentEvent.channel, ConsentEvent.category, func.count())
            .where(ConsentEvent.action == Action.CONFIRM)
            .group_by(ConsentEvent.channel, ConsentEvent.category)
        ).all()
        assert trail.verify(session).is_ok
    # One event per topic (the channel and each category), each written once.
    assert sorted((channel, category or "", n) for channel, category, n in confirmations) == [
        ("email", "", 1),
        ("email", "newsletter", 1),
        ("email", "offers", 1),
    ]
