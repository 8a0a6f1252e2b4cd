"""The preference-page use cases, without Flask: what a save, GPC and one-click write."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.domain.errors import InvalidTokenError
from app.domain.rules import Rules
from app.models import ConsentEvent
from app.services.consent import notices
from app.services.preference_center import message_links, preference_page
from app.services.tokens import Purpose, Tokens
from tests.factories import make_subscriber
from tests.transactions import counting_commits
from tests.web.pages import notices_path

LINKS = Tokens(
    "secret", {Purpose.PREFERENCES: timedelta(days=90), Purpose.UNSUBSCRIBE: timedelta(days=90)}
)
VISIT = preference_page.PreferenceVisit(ip="192.0.2.1", user_agent="tests")


def methods(session: Session, subject_id: str) -> list[str]:
    return list(
        session.scalars(
            select(ConsentEvent.method)
            .where(ConsentEvent.subject_id == subject_id)
            .order_by(ConsentEvent.seq)
        )
    )


def test_a_save_writes_only_what_differs_from_the_page(session: Session, rules: Rules) -> None:
    notices.publish_file(session, notices_path())
    subject_id = make_subscriber(session, rules)
    token = LINKS.make(Purpose.PREFERENCES, {"s": subject_id})
    before = len(methods(session, subject_id))
    written = preference_page.save(
        session,
        rules,
        LINKS,
        token,
        VISIT,
        pairs={("email", "newsletter")},
        purposes=set(),
        locale="de",
        notice_version=None,
    )
    assert written == 0
    written = preference_page.save(
        session,
        rules,
        LINKS,
        token,
        VISIT,
        pairs=set(),
        purposes={"personalization"},
        locale="de",
        notice_version="bogus",
    )
    assert written == 2
    events = session.scalars(
        select(ConsentEvent).where(ConsentEvent.subject_id == subject_id).order_by(ConsentEvent.seq)
    ).all()[before:]
    assert {(e.locale, e.notice_version) for e in events} == {("de", "2026-11-01")}


def test_gpc_is_recorded_once_per_withdrawal(session: Session, rules: Rules) -> None:
    subject_id = make_subscriber(session, rules)
    token = LINKS.make(Purpose.PREFERENCES, {"s": subject_id})
    gpc = preference_page.PreferenceVisit(is_gpc=True)
    for _ in range(2):
        page = preference_page.show(session, rules, LINKS, token, gpc, pick_locale=lambda s: "en")
        assert page.is_gpc_honoured
    assert methods(session, subject_id).count("gpc") == 1


def test_showing_the_page_with_gpc_is_one_transaction(session: Session, rules: Rules) -> None:
    subject_id = make_subscriber(session, rules)
    token = LINKS.make(Purpose.PREFERENCES, {"s": subject_id})
    gpc = preference_page.PreferenceVisit(is_gpc=True)
    session.commit()  # nothing begun: so ledger.lock has no reads to end
    with counting_commits(session, reads=True) as commits:
        preference_page.show(session, rules, LINKS, token, gpc, pick_locale=lambda s: "en")
    assert len(commits) == 1
    assert methods(session, subject_id).count("gpc") == 1


def test_a_token_for_another_purpose_opens_nothing(session: Session, rules: Rules) -> None:
    subject_id = make_subscriber(session, rules)
    unsubscribe = LINKS.make(Purpose.UNSUBSCRIBE, {"s": subject_id, "c": "email"})
    with pytest.raises(InvalidTokenError):
        preference_page.subject_of(LINKS, unsubscribe)
    preference = LINKS.make(Purpose.PREFERENCES, {"s": subject_id})
    with pytest.raises(InvalidTokenError):
        message_links.open_unsubscribe(rules, LINKS, preference)
    with pytest.raises(InvalidTokenError):
        message_links.open_unsubscribe(
            rules, LINKS, LINKS.make(Purpose.UNSUBSCRIBE, {"s": subject_id})
        )


def test_ticking_a_box_of_a_channel_awaiting_confirmation_leaves_it_pending(
    session: Session, rules: Rules
) -> None:
    subject_id = make_subscriber(session, rules, confirmed=False)
    token = LINKS.make(Purpose.PREFERENCES, {"s": subject_id})
    preference_page.save(
        session,
        rules,
        LINKS,
        token,
        VISIT,
        pairs={("email", "newsletter"), ("email", "offers")},
        purposes=set(),
        locale="en",
        notice_version=None,
    )
    page = preference_page.show(session, rules, LINKS, token, VISIT, pick_locale=lambda s: "en")
    assert page.view.channels["email"] is not None
    assert page.view.channels["email"].status == "pending"
    reasons = {(p.channel, p.category): p.decision.reason for p in page.view.pairs}
    assert reasons[("email", "offers")] == "pending_confirmation"
    assert reasons[("email", "newsletter")] == "pending_confirmation"
