"""The preferences answer built straight from the view is, byte for byte, what the
schema's dump gave, over varied standings (granted, withdrawn, pending, unsubscribed from all,
purposes, never asked)."""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask
from sqlalchemy.orm import Session

from app.api import dump
from app.api.schemas import PreferencesSchema
from app.api.subjects import preferences_body
from app.domain.consent import PreferencesView, Topic
from app.domain.rules import Rules
from app.domain.vocabulary import Status
from app.services.consent import preferences
from tests.factories import make_act, make_subscriber

CHANGES = [
    [("email", "newsletter", "", Status.WITHDRAWN)],
    [("email", "offers", "", Status.GRANTED), ("", "", "personalization", Status.GRANTED)],
    [("email", "", "", Status.WITHDRAWN)],
    [("", "", "partner_sharing", Status.WITHDRAWN), ("email", "newsletter", "", Status.GRANTED)],
    [("sms", "", "", Status.GRANTED)],
]


def _views(session: Session, rules: Rules) -> list[tuple[str, PreferencesView]]:
    pending = make_subscriber(session, rules, email="pending@example.org", confirmed=False)
    subject_id = make_subscriber(session, rules, categories=["newsletter", "offers"])
    views = [(pending, preferences.view(session, rules, pending))]
    views.append((subject_id, preferences.view(session, rules, subject_id)))
    for changes in CHANGES:
        asked = [preferences.Change(Topic(c, k, p), s) for c, k, p, s in changes]
        views.append(
            (subject_id, preferences.change(session, rules, subject_id, asked, make_act()))
        )
    views.append((subject_id, preferences.unsubscribe_all(session, rules, subject_id, make_act())))
    return views


def test_the_answer_is_the_schemas_bytes(
    session: Session, rules: Rules, make_app: Callable[..., Flask]
) -> None:
    app = make_app()
    schema = PreferencesSchema()
    views = _views(session, rules)
    assert len({app.json.dumps(v.as_data(), default=str) for _, v in views}) == len(views)
    for subject_id, view in views:
        usual = dump(schema, {"subject_id": subject_id} | view.as_data())
        assert app.json.dumps(preferences_body(subject_id, view)) == app.json.dumps(usual)
