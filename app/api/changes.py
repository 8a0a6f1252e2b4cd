"""The changes feed, webhook receivers and their delivery log, and reported opt-outs."""

from __future__ import annotations

from typing import Any

from flask import Blueprint
from flask.typing import ResponseReturnValue

from app.api import api_act, dump, load_args, load_body
from app.api.feed_schemas import (
    ChangesQuerySchema,
    DeliveriesQuerySchema,
    DeliverySchema,
    OptOutBatchSchema,
    OptOutResultSchema,
    WebhookCreatedSchema,
    WebhookInSchema,
    WebhookSchema,
)
from app.api.schemas import StrictSchema
from app.auth import current_client_id, require
from app.domain.identifiers import identifier
from app.domain.vocabulary import IdentifierKind, Method, Scope
from app.http import big_json, read_session, rules, session, settings
from app.services.changes import feed
from app.services.consent import opt_outs
from app.services.delivery import webhooks

bp = Blueprint("changes", __name__)

_changes_query = ChangesQuerySchema()
_webhook_in = WebhookInSchema()
_webhook = WebhookSchema()
_created = WebhookCreatedSchema()
_deliveries_query = DeliveriesQuerySchema()
_delivery = DeliverySchema()
_opt_outs = OptOutBatchSchema()
_outcome = OptOutResultSchema()
_no_fields = StrictSchema()


@bp.get("/changes")
@require(Scope.CONSENT_READ)
def changes() -> ResponseReturnValue:
    """Page through every consent change.

    ---
    tags: [changes]
    operationId: listChanges
    description: |
      Every consent change in the order it was recorded, with the identifiers the subject
      holds now. `cursor` is the change's place in the audit trail: stable, never reused,
      and valid for as long as the trail keeps the event. Ask with `after` set to the
      `next_after` you were given: it is never null (on an empty page it is the `after`
      you sent), so a poller that keeps asking misses nothing and sees nothing twice.
      An erasure is a change with `action: erased` and no identifiers; no change lists the
      identifiers of an erased subject. Ledger bookkeeping (notices published, checkpoints,
      retention runs, receivers disabled) is not a change.
    parameters:
    - in: query
      schema: ChangesQuerySchema
    responses:
      '200':
        description: One page.
        content:
          application/json:
            schema: ChangesPageSchema
    """
    args = load_args(_changes_query)
    with read_session() as reader:
        items, next_after = feed.page(reader, int(args["after"]), args["limit"])
    # Items leave as the feed built them (ChangesPageSchema describes them): dumping 1,000
    # nested items through marshmallow, or encoding them with the json module, would cost
    # more than reading them.
    return big_json({"changes": items, "next_after": next_after})


@bp.post("/webhooks")
@require(Scope.WEBHOOKS_MANAGE)
def create_webhook() -> ResponseReturnValue:
    """Register a webhook receiver.

    ---
    tags: [changes]
    operationId: createWebhook
    description: |
      From now on each change of the listed types is queued for this receiver in the same
      transaction that records it, and POSTed as `{"type", "timestamp", "data": <a changes
      item>}`, signed per Standard Webhooks (`webhook-id`, `webhook-timestamp`,
      `webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">`). The `secret`
      (`whsec_<base64>`) is shown only in this answer and on rotation.

      Deliveries keep the order of the changes for each receiver: the next is sent once
      the one before it was answered 2xx. Anything else, or no answer within 10 s, is
      retried after 5 s, 30 s, 2 min, 10 min, 30 min, 1 h, 2 h, 4 h, 8 h and 10 h (about
      26 h in all); then the receiver is disabled, which is an event in the audit trail.
      Redirects are not followed. The target is resolved at each connection and refused if
      it is loopback, private, link-local (cloud metadata) or otherwise not public, unless
      `WEBHOOK_ALLOW_PRIVATE=true`, which alone also allows plain `http`. Receivers
      deduplicate by `webhook-id`: a crash may send a delivery again, with the same id.
    requestBody:
      required: true
      content:
        application/json:
          schema: WebhookInSchema
          example:
            url: https://crm.example.org/consent-hooks
            events: [consent.changed, subject.erased]
    responses:
      '201':
        description: Registered; the secret is shown this once.
        content:
          application/json:
            schema: WebhookCreatedSchema
    """
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
    """List webhook receivers.

    ---
    tags: [changes]
    operationId: listWebhooks
    responses:
      '200':
        description: Every receiver, secrets left out.
        content:
          application/json:
            schema: WebhookListSchema
    """
    return {"webhooks": [dump(_webhook, w) for w in webhooks.listed(session())]}


@bp.get("/webhooks/<uuid:webhook_id>")
@require(Scope.WEBHOOKS_MANAGE)
def get_webhook(webhook_id: Any) -> ResponseReturnValue:
    """One webhook receiver.

    ---
    tags: [changes]
    operationId: getWebhook
    responses:
      '200':
        description: The receiver, its secret left out.
        content:
          application/json:
            schema: WebhookSchema
      '404': {$ref: '#/components/responses/NotFound'}
    """
    return dump(_webhook, webhooks.get(session(), str(webhook_id)))


@bp.delete("/webhooks/<uuid:webhook_id>")
@require(Scope.WEBHOOKS_MANAGE)
def delete_webhook(webhook_id: Any) -> ResponseReturnValue:
    """Remove a webhook receiver and its queued deliveries.

    ---
    tags: [changes]
    operationId: deleteWebhook
    responses:
      '204':
        description: Removed.
      '404': {$ref: '#/components/responses/NotFound'}
    """
    webhooks.remove(session(), str(webhook_id))
    return "", 204


@bp.post("/webhooks/<uuid:webhook_id>/rotate-secret")
@require(Scope.WEBHOOKS_MANAGE)
def rotate_secret(webhook_id: Any) -> ResponseReturnValue:
    """Give a receiver a new secret.

    ---
    tags: [changes]
    operationId: rotateWebhookSecret
    description: |
      The new secret is shown once. Until `previous_secret_expires_at`
      (`WEBHOOK_SECRET_OVERLAP_HOURS`, 24 by default) every delivery carries two
      signatures, one per secret, so the receiver can switch at its own pace.
    requestBody: {$ref: '#/components/requestBodies/Empty'}
    responses:
      '200':
        description: The receiver with its new secret.
        content:
          application/json:
            schema: WebhookCreatedSchema
      '404': {$ref: '#/components/responses/NotFound'}
    """
    load_body(_no_fields, optional=True)  # nothing to send; a body that is sent must be valid
    made = webhooks.rotate_secret(
        session(), str(webhook_id), overlap=settings().webhook_secret_overlap
    )
    return _with_secret(made)


@bp.get("/webhooks/<uuid:webhook_id>/deliveries")
@require(Scope.WEBHOOKS_MANAGE)
def deliveries(webhook_id: Any) -> ResponseReturnValue:
    """A receiver's delivery log.

    ---
    tags: [changes]
    operationId: listWebhookDeliveries
    description: |
      Newest change first: status, attempts, the last answer's HTTP status and latency,
      and the last error. Answer bodies are never stored.
    parameters:
    - in: query
      schema: DeliveriesQuerySchema
    responses:
      '200':
        description: The log.
        content:
          application/json:
            schema: DeliveryListSchema
      '404': {$ref: '#/components/responses/NotFound'}
    """
    args = load_args(_deliveries_query)
    rows = webhooks.deliveries(
        session(), str(webhook_id), limit=args["limit"], status=args.get("status")
    )
    return {"deliveries": [dump(_delivery, row) for row in rows]}


@bp.post("/webhooks/<uuid:webhook_id>/deliveries/<string(maxlength=40):delivery_id>/redeliver")
@require(Scope.WEBHOOKS_MANAGE)
def redeliver(webhook_id: Any, delivery_id: str) -> ResponseReturnValue:
    """Send a delivery again.

    ---
    tags: [changes]
    operationId: redeliverWebhook
    description: |
      Queues the delivery again with the same `webhook-id` (receivers deduplicate by it),
      with a fresh day of retries if it had failed, and switches a disabled receiver back
      on. Changes recorded while it was disabled were not queued for it; the feed has them.
    requestBody: {$ref: '#/components/requestBodies/Empty'}
    responses:
      '202':
        description: Queued.
        content:
          application/json:
            schema: DeliverySchema
      '404': {$ref: '#/components/responses/NotFound'}
    """
    load_body(_no_fields, optional=True)
    return dump(_delivery, webhooks.redeliver(session(), str(webhook_id), delivery_id)), 202


@bp.post("/opt-outs")
@require(Scope.CONSENT_WRITE)
def report_opt_outs() -> ResponseReturnValue:
    """Record opt-outs that happened elsewhere.

    ---
    tags: [changes]
    operationId: reportOptOuts
    description: |
      A batch of withdrawals another system saw, each with its provenance: `complaint`
      (withdraws all email marketing of the address), `unsubscribe` (the named category,
      else the whole channel; email by default), `stop_keyword` (all SMS marketing) or
      `bounce` (the channel). Recorded all or none, as events with method
      `provider_report` (or `sms_keyword`) and the reason, provider, reference and reported
      time in their details. One result per item, in order: `withdrawn`, `unchanged`
      (already withdrawn), `unknown_subject` or `suppressed` (erased).

      Two provider adapters take the providers' own signed calls (no bearer token):
      `POST /inbound/twilio/sms` (Twilio's inbound-message webhook, `X-Twilio-Signature`
      checked with `TWILIO_AUTH_TOKEN`; STOP, STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT
      withdraw SMS marketing, START and UNSTOP give back what a STOP took, HELP and INFO
      answer with TwiML) and `POST /inbound/sendgrid/events` (SendGrid's Signed Event
      Webhook, checked with `SENDGRID_WEBHOOK_PUBLIC_KEY`; spam reports, unsubscribes,
      group unsubscribes, bounces and suppression drops).
    requestBody:
      required: true
      content:
        application/json:
          schema: OptOutBatchSchema
          example:
            source: esp-sync
            opt_outs:
            - {email: ada@example.org, reason: complaint, provider: postmark, reference: b7e1}
            - {phone: '+14155550100', reason: stop_keyword}
    responses:
      '200':
        description: One result per opt-out, in order.
        content:
          application/json:
            schema: OptOutResultsSchema
    """
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
