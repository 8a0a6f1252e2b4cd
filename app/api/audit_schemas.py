"""The wire format of the DPO's /v1 routes: the audit package, checkpoints, rights requests and
the double opt-in record (described in openapi.yaml the way app/api/schemas.py says)."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from app.api.schemas import (
    StrictSchema,
    UTCDateTime,
    name_field,
    sha256_field,
    shared,
    uuid_field,
)
from app.services.privacy_center.rights import KINDS


class PackageQuerySchema(StrictSchema):
    since = UTCDateTime(metadata=shared("Instant", example="2024-01-01T00:00:00Z"))
    until = UTCDateTime(metadata=shared("Instant"))
    subject_id = fields.UUID(metadata={"description": "Only events about this subject."})
    channel = name_field()
    category = name_field()


class CheckpointSchema(Schema):
    class Meta:
        description = "A signature of the chain's head, stored as a `checkpoint` audit event."

    seq = fields.Integer(
        metadata={"minimum": 1, "description": "The checkpoint event's own `seq`."}
    )
    signed_seq = fields.Integer(
        metadata={"minimum": 0, "description": "The `seq` of the head it signed."}
    )
    signed_hash = sha256_field("The `hash` of the head it signed.")
    occurred_at = UTCDateTime()
    jws = fields.String(metadata={"description": "Compact JWS (ES256) over the head's claims."})


class RightsQuerySchema(StrictSchema):
    overdue = fields.Boolean(load_default=False)
    limit = fields.Integer(load_default=500, validate=validate.Range(min=1, max=5000))


class RightsRequestInSchema(StrictSchema):
    subject_id = fields.UUID(required=True)
    kind = fields.String(
        required=True, validate=validate.OneOf(KINDS), metadata=shared("RightsRequestKind")
    )
    received_at = UTCDateTime(
        metadata=shared("Instant", "When the request came in; now if left out.")
    )
    channel = fields.String(
        validate=validate.Length(max=32),
        metadata={
            "description": "Where it came in (email, letter, phone, web).",
            "example": "email",
        },
    )
    note = fields.String(validate=validate.Length(max=2000))


class RightsRequestSchema(Schema):
    id = uuid_field()
    subject_id = uuid_field()
    kind = fields.String(metadata=shared("RightsRequestKind"))
    received_at = UTCDateTime()
    due_at = UTCDateTime(metadata={"description": "One month after receipt (GDPR Art. 12(3))."})
    answered_at = UTCDateTime(allow_none=True)
    channel = fields.String(allow_none=True)
    note = fields.String(allow_none=True)


class NoticeTextSchema(Schema):
    class Meta:
        description = (
            "The notice shown, as published; only `version` (with null `text` and `sha256`) "
            "when\nthat version was never published.\n"
        )

    key = fields.String(metadata={"x-optional": True})
    version = fields.String()
    locale = fields.String(metadata={"x-optional": True})
    title = fields.String(metadata={"x-optional": True})
    text = fields.String(allow_none=True)
    sha256 = fields.String(allow_none=True, metadata={"pattern": "^[0-9a-f]{64}$"})


class RequestStepSchema(Schema):
    requested_at = UTCDateTime()
    ip = fields.String(allow_none=True)
    user_agent = fields.String(allow_none=True)
    source = fields.String(allow_none=True)
    capture_point = fields.String(allow_none=True)
    event_seqs = fields.List(
        fields.Integer(),
        metadata={"description": "The `seq` of each audit event the request wrote."},
    )
    notice = fields.Nested(
        NoticeTextSchema,
        allow_none=True,
        metadata={"description": "The notice shown; null when the request named none."},
    )


class MailStepSchema(Schema):
    message_id = fields.String(allow_none=True)
    template = fields.String(allow_none=True)
    template_version = fields.String(allow_none=True)
    template_sha256 = fields.String(allow_none=True)
    status = fields.String(
        allow_none=True,
        metadata={"description": "The mail's delivery state (`queued`, `sent` or `failed`)."},
    )
    sent_at = UTCDateTime(allow_none=True)


class ConfirmStepSchema(Schema):
    confirmed_at = UTCDateTime()
    ip = fields.String(allow_none=True)
    user_agent = fields.String(allow_none=True)
    event_seqs = fields.List(fields.Integer())


class OptInRecordSchema(Schema):
    request_id = uuid_field()
    channel = fields.String()
    categories = fields.List(fields.String())
    request = fields.Nested(RequestStepSchema)
    mail = fields.Nested(MailStepSchema)
    confirmation = fields.Nested(
        ConfirmStepSchema,
        allow_none=True,
        metadata={"description": "Null until the request is confirmed."},
    )


class DoubleOptInEvidenceSchema(Schema):
    subject_id = uuid_field()
    requests = fields.List(
        fields.Nested(OptInRecordSchema),
        metadata={"description": "Every double opt-in request of the subject, oldest first."},
    )
