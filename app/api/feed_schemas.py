"""The wire format of the changes feed, webhooks and inbound opt-outs, matching openapi.yaml."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from app.api.schemas import NAME, StrictSchema, TrimmedEmail, UTCDateTime
from app.domain.changes import MAX_CURSOR, EventType
from app.services.consent.opt_outs import REASONS

CURSOR = validate.Regexp(r"^[0-9]{1,19}$", error="Not a cursor: use a next_after you were given.")


class ChangesQuerySchema(StrictSchema):
    after = fields.String(load_default="0", validate=CURSOR)
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=1000))

    @validates_schema
    def cursor_in_range(self, data: dict[str, Any], **_: Any) -> None:
        if int(data.get("after", "0")) > MAX_CURSOR:
            raise ValidationError("Not a cursor: use a next_after you were given.", "after")


class IdentifiersSchema(Schema):
    email = fields.List(fields.String())
    phone = fields.List(fields.String())
    external_id = fields.List(fields.String())


class ChangeItemSchema(Schema):
    cursor = fields.String()
    occurred_at = fields.AwareDateTime()
    subject_id = fields.String(allow_none=True)
    identifiers = fields.Dict(keys=fields.String(), values=fields.List(fields.String()))
    channel = fields.String(allow_none=True)
    category = fields.String(allow_none=True)
    purpose = fields.String(allow_none=True)
    status = fields.String(allow_none=True)
    action = fields.String()


class ChangesPageSchema(Schema):
    changes = fields.List(fields.Nested(ChangeItemSchema))
    next_after = fields.String()


EVENT_TYPES = [str(t) for t in EventType]


class WebhookInSchema(StrictSchema):
    url = fields.String(required=True, validate=validate.Length(min=1, max=2000))
    events = fields.List(
        fields.String(validate=validate.OneOf(EVENT_TYPES)),
        load_default=[str(EventType.CONSENT_CHANGED), str(EventType.SUBJECT_ERASED)],
        validate=validate.Length(min=1, max=len(EVENT_TYPES)),
    )


class WebhookSchema(Schema):
    id = fields.String()
    url = fields.String()
    events = fields.Function(lambda w: w.events.split())
    created_at = fields.AwareDateTime()
    disabled_at = fields.AwareDateTime(allow_none=True)
    disabled_reason = fields.String(allow_none=True)
    previous_secret_expires_at = fields.AwareDateTime(allow_none=True)


class DeliveriesQuerySchema(StrictSchema):
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=1000))
    status = fields.String(validate=validate.OneOf(["pending", "delivered", "failed"]))


class DeliverySchema(Schema):
    id = fields.String()
    cursor = fields.Function(lambda d: str(d.event_seq))
    type = fields.String(attribute="event_type")
    status = fields.String()
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
    phone = fields.String(validate=validate.Length(max=40))
    external_id = fields.String(validate=validate.Length(min=1, max=200))
    channel = fields.String(validate=NAME)
    category = fields.String(validate=NAME)
    reason = fields.String(required=True, validate=validate.OneOf(REASONS))
    occurred_at = UTCDateTime()
    provider = fields.String(validate=validate.Length(max=64))
    reference = fields.String(validate=validate.Length(max=200))

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
    outcome = fields.String()
    subject_id = fields.String(allow_none=True)
    events = fields.Integer()
