"""The wire format of the DPO's /v1 routes (issue 6), matching openapi.d/issue-6.yaml."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from app.api.schemas import NAME, StrictSchema, UTCDateTime
from app.services.privacy_center.rights import KINDS


class PackageQuerySchema(StrictSchema):
    since = UTCDateTime()
    until = UTCDateTime()
    subject_id = fields.UUID()
    channel = fields.String(validate=NAME)
    category = fields.String(validate=NAME)


class CheckpointSchema(Schema):
    seq = fields.Integer()
    signed_seq = fields.Integer()
    signed_hash = fields.String()
    occurred_at = UTCDateTime()
    jws = fields.String()


class RightsQuerySchema(StrictSchema):
    overdue = fields.Boolean(load_default=False)
    limit = fields.Integer(load_default=500, validate=validate.Range(min=1, max=5000))


class RightsRequestInSchema(StrictSchema):
    subject_id = fields.UUID(required=True)
    kind = fields.String(required=True, validate=validate.OneOf(KINDS))
    received_at = UTCDateTime()
    channel = fields.String(validate=validate.Length(max=32))
    note = fields.String(validate=validate.Length(max=2000))


class RightsRequestSchema(Schema):
    id = fields.String()
    subject_id = fields.String()
    kind = fields.String()
    received_at = UTCDateTime()
    due_at = UTCDateTime()
    answered_at = UTCDateTime(allow_none=True)
    channel = fields.String(allow_none=True)
    note = fields.String(allow_none=True)


class NoticeTextSchema(Schema):
    key = fields.String()
    version = fields.String()
    locale = fields.String()
    title = fields.String()
    text = fields.String(allow_none=True)
    sha256 = fields.String(allow_none=True)


class RequestStepSchema(Schema):
    requested_at = UTCDateTime()
    ip = fields.String(allow_none=True)
    user_agent = fields.String(allow_none=True)
    source = fields.String(allow_none=True)
    capture_point = fields.String(allow_none=True)
    event_seqs = fields.List(fields.Integer())
    notice = fields.Nested(NoticeTextSchema, allow_none=True)


class MailStepSchema(Schema):
    message_id = fields.String(allow_none=True)
    template = fields.String(allow_none=True)
    template_version = fields.String(allow_none=True)
    template_sha256 = fields.String(allow_none=True)
    status = fields.String(allow_none=True)
    sent_at = UTCDateTime(allow_none=True)


class ConfirmStepSchema(Schema):
    confirmed_at = UTCDateTime()
    ip = fields.String(allow_none=True)
    user_agent = fields.String(allow_none=True)
    event_seqs = fields.List(fields.Integer())


class OptInRecordSchema(Schema):
    request_id = fields.String()
    channel = fields.String()
    categories = fields.List(fields.String())
    request = fields.Nested(RequestStepSchema)
    mail = fields.Nested(MailStepSchema)
    confirmation = fields.Nested(ConfirmStepSchema, allow_none=True)


class DoubleOptInEvidenceSchema(Schema):
    subject_id = fields.String()
    requests = fields.List(fields.Nested(OptInRecordSchema))
