"""The changes feed, webhook receivers and their delivery log, and reported opt-outs."""

from __future__ import annotations

from typing import Any

from flask import Blueprint
from flask.typing import ResponseReturnValue

from app.api import api_act, big_json, dump, load_args, load_body
from app.api.feed_schemas import (
    ChangesQuerySchema,
    DeliveriesQuerySchema,
    DeliverySchema,
    OptOutBatchSchema,
    OptOutResultSchema,
    WebhookInSchema,
    WebhookSchema,
)
from app.auth import current_client_id, require
from app.domain.identifiers import identifier
from app.domain.vocabulary import IdentifierKind, Method, Scope
from app.http import read_session, rules, session, settings
from app.services.changes import feed
from app.services.consent import opt_outs
from app.services.delivery import webhooks

bp = Blueprint("changes", __name__)

_changes_query = ChangesQuerySchema()
_webhook_in = WebhookInSchema()
_webhook = WebhookSchema()
_deliveries_query = DeliveriesQuerySchema()
_delivery = DeliverySchema()
_opt_outs = OptOutBatchSchema()
_outcome = OptOutResultSchema()


@bp.get("/changes")
@require(Scope.CONSENT_READ)
def changes() -> ResponseReturnValue:
    args = load_args(_changes_query)
    with read_session() as reader:
        items, next_after = feed.page(reader, int(args["after"]), args["limit"])
    # Items leave as the feed built them (ChangesPageSchema describes them): dumping 1,000
    # nested items through marshmallow would cost more than reading them.
    return big_json({"changes": items, "next_after": next_after})


@bp.post("/webhooks")
@require(Scope.WEBHOOKS_MANAGE)
def create_webhook() -> ResponseReturnValue:
    body = load_body(_webhook_in)
    made = webhooks.register(
        session(),
        body["url"],
        body["events"],
        actor=f"client:{current_client_id()}",
        allow_private=settings().webhook_allow_private,
    )
    return _with_secret(made), 201


def _with_secret(made: webhooks.Registered) -> dict[str, Any]:
    return dict(dump(_webhook, made.webhook), secret=made.secret)


@bp.get("/webhooks")
@require(Scope.WEBHOOKS_MANAGE)
def list_webhooks() -> ResponseReturnValue:
    return {"webhooks": [dump(_webhook, w) for w in webhooks.listed(session())]}


@bp.get("/webhooks/<uuid:webhook_id>")
@require(Scope.WEBHOOKS_MANAGE)
def get_webhook(webhook_id: Any) -> ResponseReturnValue:
    return dump(_webhook, webhooks.get(session(), str(webhook_id)))


@bp.delete("/webhooks/<uuid:webhook_id>")
@require(Scope.WEBHOOKS_MANAGE)
def delete_webhook(webhook_id: Any) -> ResponseReturnValue:
    webhooks.remove(session(), str(webhook_id))
    return "", 204


@bp.post("/webhooks/<uuid:webhook_id>/rotate-secret")
@require(Scope.WEBHOOKS_MANAGE)
def rotate_secret(webhook_id: Any) -> ResponseReturnValue:
    made = webhooks.rotate_secret(
        session(), str(webhook_id), overlap=settings().webhook_secret_overlap
    )
    return _with_secret(made)


@bp.get("/webhooks/<uuid:webhook_id>/deliveries")
@require(Scope.WEBHOOKS_MANAGE)
def deliveries(webhook_id: Any) -> ResponseReturnValue:
    args = load_args(_deliveries_query)
    rows = webhooks.deliveries(
        session(), str(webhook_id), limit=args["limit"], status=args.get("status")
    )
    return {"deliveries": [dump(_delivery, row) for row in rows]}


@bp.post("/webhooks/<uuid:webhook_id>/deliveries/<string(maxlength=40):delivery_id>/redeliver")
@require(Scope.WEBHOOKS_MANAGE)
def redeliver(webhook_id: Any, delivery_id: str) -> ResponseReturnValue:
    return dump(_delivery, webhooks.redeliver(session(), str(webhook_id), delivery_id)), 202


@bp.post("/opt-outs")
@require(Scope.CONSENT_WRITE)
def report_opt_outs() -> ResponseReturnValue:
    body = load_body(_opt_outs)
    reports = [
        opt_outs.OptOut(
            identifier(kind, item[kind]),
            item["reason"],
            channel=item.get("channel"),
            category=item.get("category"),
            reported_at=item.get("occurred_at"),
            provider=item.get("provider"),
            reference=item.get("reference"),
        )
        for item in body["opt_outs"]
        for kind in IdentifierKind
        if kind in item
    ]
    outcomes = opt_outs.record(session(), rules(), reports, api_act(body, Method.PROVIDER_REPORT))
    return {
        "results": [
            dump(_outcome, {"index": index, **outcome.__dict__})
            for index, outcome in enumerate(outcomes)
        ]
    }
