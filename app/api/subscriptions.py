"""Opting in through the API: records the request and queues the double opt-in mail with it."""

from __future__ import annotations

from flask import Blueprint
from flask.typing import ResponseReturnValue

from app.api import api_act, dump, load_body
from app.api.schemas import SubscriptionResultSchema, SubscriptionSchema
from app.auth import require
from app.domain.identifiers import identifier
from app.domain.identity import CONTACT_KIND
from app.domain.vocabulary import IdentifierKind, Scope
from app.http import mailer, rules, session
from app.services.optin import signups

bp = Blueprint("subscriptions", __name__)

_body = SubscriptionSchema()
_result = SubscriptionResultSchema()


@bp.post("/subscriptions")
@require(Scope.CONSENT_WRITE)
def subscribe() -> ResponseReturnValue:
    body = load_body(_body)
    region = body.get("country")
    idents = {
        kind: identifier(kind, body[kind], region=region)
        for kind in IdentifierKind
        if body.get(kind)
    }
    contact = idents.pop(CONTACT_KIND.get(body["channel"], IdentifierKind.EMAIL))
    requested = signups.subscribe(
        session(),
        rules(),
        mailer(),
        contact,
        body["channel"],
        body["categories"],
        api_act(body),
        country=region,
        also=list(idents.values()),
    )
    return dump(_result, {"subject_id": requested.subject_id, "status": requested.status}), 202
