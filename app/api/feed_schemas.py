"""The wire format of the changes feed, webhooks and reported opt-outs (openapi.yaml is made
from these and the views' docstrings)."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from app.api.schemas import StrictSchema, TrimmedEmail, UTCDateTime, name_field, shared, uuid_field
from app.domain.changes import MAX_CURSOR, EventType
from app.services.consent.opt_outs import REASONS

CURSOR = validate.Regexp(r"^[0-9]{1,19}$", error="Not a cursor: use a next_after you were given.")
EVENT_TYPES = [str(t) for t in EventType]
_EVENT_TYPE_DOC = (
    "`consent.changed`: a request, grant, confirmation, withdrawal or unsubscribe-all;"
    " `subject.erased`: an erasure; `subject.changed`: identifiers linked, unlinked or merged."
)


def _nullable(description: str) -> fields.String:
    return fields.String(allow_none=True, metadata={"description": description})


class ChangesQuerySchema(StrictSchema):
    after = fields.String(
        load_default="0",
        validate=CURSOR,
        metadata={"description": "A cursor from an earlier page; `0` starts at the beginning."},
    )
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=1000))

    @validates_schema
    def cursor_in_range(self, data: dict[str, Any], **_: Any) -> None:
        if int(data.get("after", "0")) > MAX_CURSOR:
            raise ValidationError("Not a cursor: use a next_after you were given.", "after")


class ChangeIdentifiersSchema(Schema):
    email = fields.List(fields.String())
    phone = fields.List(fields.String(), metadata={"description": "E.164."})
    external_id = fields.List(fields.String())


class ChangeItemSchema(Schema):
    cursor = fields.String(metadata={"description": "Where the change is in the trail."})
    occurred_at = fields.AwareDateTime()
    subject_id = uuid_field(allow_none=True)
    identifiers = fields.Nested(
        ChangeIdentifiersSchema,
        metadata={
            "description": "The subject's identifiers by kind, as they are now; none for an"
            " erasure, nor for any change of an erased subject."
        },
    )
    channel = _nullable("The channel; null for a purpose or all of marketing.")
    category = _nullable("The category; null for a whole channel.")
    purpose = _nullable("The processing purpose, where the change is about one.")
    status = fields.String(
        allow_none=True,
        validate=validate.OneOf(["granted", "pending", "withdrawn"]),
        metadata={"description": "The standing the change left; null for an erasure."},
    )
    action = fields.String(
        metadata={
            "description": "The ledger's action (`request`, `grant`, `confirm`, `withdraw`,"
            " `unsubscribe_all`, `suppression_lifted`, identity changes), or `erased`."
        }
    )


class ChangesPageSchema(Schema):
    changes = fields.List(fields.Nested(ChangeItemSchema))
    next_after = fields.String(metadata={"description": "The cursor to ask with next; never null."})


class WebhookInSchema(StrictSchema):
    url = fields.String(
        required=True,
        validate=validate.Length(min=1, max=2000),
        metadata={"example": "https://crm.example.org/consent-hooks"},
    )
    events = fields.List(
        fields.String(validate=validate.OneOf(EVENT_TYPES)),
        load_default=[str(EventType.CONSENT_CHANGED), str(EventType.SUBJECT_ERASED)],
        validate=validate.Length(min=1, max=len(EVENT_TYPES)),
        metadata={"description": _EVENT_TYPE_DOC},
    )


class WebhookSchema(Schema):
    id = uuid_field()
    url = fields.String()
    events = fields.Function(
        lambda webhook: webhook.events.split(),
        metadata={"type": "array", "items": {"type": "string", "enum": EVENT_TYPES}},
    )
    created_at = fields.AwareDateTime()
    disabled_at = fields.AwareDateTime(
        allow_none=True,
        metadata={"description": "When it was switched off after a day of failures."},
    )
    disabled_reason = fields.String(allow_none=True)
    previous_secret_expires_at = fields.AwareDateTime(
        allow_none=True, metadata={"description": "Until then the previous secret signs too."}
    )


class WebhookCreatedSchema(WebhookSchema):
    secret = fields.String(
        metadata={"description": "`whsec_<base64>`, shown only here.", "pattern": "^whsec_"}
    )


class DeliveriesQuerySchema(StrictSchema):
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=1000))
    status = fields.String(validate=validate.OneOf(["pending", "delivered", "failed"]))


class DeliverySchema(Schema):
    id = fields.String(metadata={"description": "The `webhook-id` header of every attempt."})
    cursor = fields.Function(
        lambda row: str(row.event_seq),
        metadata={"type": "string", "description": "The change's cursor in the feed."},
    )
    type = fields.String(attribute="event_type", validate=validate.OneOf(EVENT_TYPES))
    status = fields.String(validate=validate.OneOf(["pending", "delivered", "failed"]))
    attempts = fields.Integer()
    created_at = fields.AwareDateTime()
    next_attempt_at = fields.AwareDateTime()
    last_attempt_at = fields.AwareDateTime(allow_none=True)
    delivered_at = fields.AwareDateTime(allow_none=True)
    response_status = fields.Integer(allow_none=True)
    latency_ms = fields.Integer(allow_none=True)
    error = fields.String(attribute="last_error", allow_none=True)


class OptOutSchema(StrictSchema):
    email = TrimmedEmail()
    phone = fields.String(validate=validate.Length(max=40), metadata={"example": "+14155550100"})
    external_id = fields.String(validate=validate.Length(min=1, max=200))
    channel = name_field("Default: email, or sms for a STOP keyword.")
    category = name_field("Only this category (for `unsubscribe`); else the whole channel.")
    reason = fields.String(required=True, validate=validate.OneOf(REASONS))
    occurred_at = UTCDateTime(metadata=shared("Instant", "When the other system saw it."))
    provider = fields.String(validate=validate.Length(max=64))
    reference = fields.String(
        validate=validate.Length(max=200),
        metadata={"description": "The provider's event or message id."},
    )

    @validates_schema
    def one_identifier(self, data: dict[str, Any], **_: Any) -> None:
        given = [k for k in ("email", "phone", "external_id") if k in data]
        if len(given) != 1:
            raise ValidationError("Give exactly one of email, phone, external_id.", "email")
        if "category" in data and "channel" not in data:
            raise ValidationError("A category needs its channel.", "channel")


class OptOutBatchSchema(StrictSchema):
    source = fields.String(validate=validate.Length(max=200), load_default=None)
    opt_outs = fields.List(
        fields.Nested(OptOutSchema), required=True, validate=validate.Length(min=1, max=1000)
    )


class OptOutResultSchema(Schema):
    index = fields.Integer()
    outcome = fields.String(
        validate=validate.OneOf(["withdrawn", "unchanged", "unknown_subject", "suppressed"])
    )
    subject_id = uuid_field(allow_none=True)
    events = fields.Integer(metadata={"description": "Events written for it."})


class OptOutResultsSchema(Schema):
    results = fields.List(fields.Nested(OptOutResultSchema))


class WebhookListSchema(Schema):
    webhooks = fields.List(fields.Nested(WebhookSchema))


class DeliveryListSchema(Schema):
    deliveries = fields.List(fields.Nested(DeliverySchema))
