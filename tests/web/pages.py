"""Helpers for the preference-page tests: a subscriber, their links, and reading the ledger."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

from flask import Flask
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from app.config import Settings
from app.domain.rules import Rules
from app.models import ConsentEvent
from app.services.consent import notices
from app.services.tokens import Purpose, Tokens
from tests.factories import make_subscriber

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def subscriber(engine: Engine, rules: Rules, *, email: str = "ada@example.org") -> str:
    """A confirmed email newsletter subscriber, with the shipped notices published."""
    with Session(engine) as session:
        notices.publish_file(session, notices_path())
        return make_subscriber(session, rules, email=email)


def notices_path() -> Path:
    return Path(str(Settings.__dataclass_fields__["notices_path"].default))


def preference_token(app: Flask, subject_id: str) -> str:
    tokens: Tokens = app.extensions["tokens"]
    return tokens.make(Purpose.PREFERENCES, {"s": subject_id})


def csrf_token(html: str) -> str:
    found = CSRF.search(html)
    assert found is not None, "no CSRF token on the page"
    return found.group(1)


def events(engine: Engine, subject_id: str) -> list[ConsentEvent]:
    with Session(engine) as session:
        return list(
            session.scalars(
                select(ConsentEvent)
                .where(ConsentEvent.subject_id == subject_id)
                .order_by(ConsentEvent.seq)
            )
        )


def details(event: ConsentEvent) -> dict[str, object]:
    return json.loads(event.details) if event.details else {}


class _Boxes(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.boxes: dict[str, bool] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "input" and found.get("type") == "checkbox":
            self.boxes[f"{found.get('name')}={found.get('value')}"] = "checked" in found


def checkboxes(html: str) -> dict[str, bool]:
    """Every checkbox on the page as "name=value" and whether it is ticked."""
    parser = _Boxes()
    parser.feed(html)
    return parser.boxes
