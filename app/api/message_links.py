"""Links for one message: the preference page, one-click unsubscribe, and the RFC 8058 headers."""

from __future__ import annotations

from typing import Any

from flask import Blueprint
from flask.typing import ResponseReturnValue

from app.api import dump, load_body
from app.api.schemas import MessageLinksRequestSchema, MessageLinksSchema
from app.auth import require
from app.domain.vocabulary import Scope
from app.http import rules, session, settings, tokens
from app.services.preference_center import message_links

bp = Blueprint("message_links", __name__)

_request = MessageLinksRequestSchema()
_links = MessageLinksSchema()


@bp.post("/subjects/<uuid:subject_id>/links")
@require(Scope.CONSENT_WRITE)
def make(subject_id: Any) -> ResponseReturnValue:
    body = load_body(_request, optional=True)
    made = message_links.make_links(
        session(),
        rules(),
        tokens(),
        settings().base_url,
        str(subject_id),
        channel=body["channel"],
        category=body["category"],
        message_id=body["message_id"],
    )
    return dump(
        _links,
        {
            "preference_url": made.preference_url,
            "unsubscribe_url": made.unsubscribe_url,
            "headers": made.headers,
        },
    )
