"""The wire format of /v1: every query, body and response, matching openapi.yaml."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from marshmallow import (
    RAISE,
    Schema,
    ValidationError,
    fields,
    post_load,
    validate,
    validates_schema,
)

from app.domain.catalog import LOCALES
from app.domain.vocabulary import Reason, Status

NAME = validate.Regexp(r"^[a-z][a-z0-9_]{0,63}$", error="Not a valid name.")
IDENTIFIER_FIELDS = ("email", "phone", "external_id", "subject_id")


class StrictSchema(Schema):
    """Every request schema: unknown fields are errors. (NUL characters never get this far:
    app/api json_body and app/security refuse them at the edge.)"""

    class Meta:
        unknown = RAISE


class UTCDateTime(fields.AwareDateTime):
    """An aware datetime, turned to UTC, between 1970 and 9998: every instant the ledger can
    store, compare and add a statutory month to."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> datetime:
        moment = super()._deserialize(value, attr, data, **kwargs)
        try:
            moment = moment.astimezone(UTC)
        except OverflowError as error:
            raise ValidationError("Out of range.") from error
        if not 1970 <= moment.year <= 9998:
            raise ValidationError("Must be between 1970 and 9998.")
        return moment


class TrimmedEmail(fields.Email):
    """An email address; surrounding white space is dropped (the contract trims it)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, str):
            value = value.strip()
        return super()._deserialize(value, attr, data, **kwargs)


def _text(maximum: int, **kwargs: Any) -> fields.String:
    return fields.String(validate=validate.Length(max=maximum), **kwargs)


class EvidenceFieldsMixin(StrictSchema):
    source = _text(200, load_default=None, allow_none=True)
    ip = fields.IP(load_default=None, allow_none=True)
    user_agent = _text(512, load_default=None, allow_none=True)
    notice_version = _text(64, load_default=None, allow_none=True)
    locale = fields.String(validate=validate.OneOf(LOCALES), load_default=None, allow_none=True)


# --- the check ------------------------------------------------------------------------------


class CheckQuerySchema(StrictSchema):
    email = TrimmedEmail()
    phone = _text(40)
    external_id = _text(200)
    subject_id = fields.UUID()
    country = fields.String(validate=validate.Regexp(r"^[A-Za-z]{2}$"))
    channel = fields.String(validate=NAME)
    category = fields.String(validate=NAME)
    purpose = fields.String(validate=NAME)

    @validates_schema
    def one_identifier_one_question(self, data: dict[str, Any], **_: Any) -> None:
        given = [f for f in IDENTIFIER_FIELDS if f in data]
        if len(given) != 1:
            raise ValidationError(
                "Give exactly one of email, phone, external_id or subject_id.", "_schema"
            )
        _one_question(data)


class CheckResultSchema(Schema):
    allowed = fields.Boolean(required=True)
    reason = fields.Enum(Reason, by_value=True, required=True)
    subject_id = fields.String(allow_none=True)
    event_id = fields.String(allow_none=True)
    contact = fields.String(allow_none=True)


class EmailList(fields.Field[list[str]]):
    """A list of strings. Whether each is an address is the check's answer, given in place
    (`invalid_identifier`): one bad entry never refuses the other 9,999. Only what is not a
    string is a malformed body, reported per index as marshmallow's List would."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> list[str]:
        if not isinstance(value, list):
            raise ValidationError("Not a valid list.")
        bad = {i: ["Not a string."] for i, item in enumerate(value) if not isinstance(item, str)}
        if bad:
            raise ValidationError(bad)
        return value


class BatchCheckSchema(StrictSchema):
    channel = fields.String(validate=NAME)
    category = fields.String(validate=NAME)
    purpose = fields.String(validate=NAME)
    emails = EmailList(required=True, validate=validate.Length(min=1, max=10_000))

    @validates_schema
    def one_question(self, data: dict[str, Any], **_: Any) -> None:
        _one_question(data)


def _one_question(data: dict[str, Any]) -> None:
    has_pair = "channel" in data or "category" in data
    if "purpose" in data and has_pair:
        raise ValidationError(
            "Ask about a purpose, or a channel and category, not both.", "_schema"
        )
    if "purpose" not in data and not ("channel" in data and "category" in data):
        raise ValidationError("Give channel and category, or purpose.", "_schema")


# --- subscriptions ---------------------------------------------------------------------------


class SubscriptionSchema(EvidenceFieldsMixin):
    email = TrimmedEmail()
    phone = _text(40)
    external_id = _text(200)
    channel = fields.String(validate=NAME, load_default="email")
    categories = fields.List(
        fields.String(validate=NAME), required=True, validate=validate.Length(min=1, max=50)
    )
    country = fields.String(
        validate=validate.Regexp(r"^[A-Za-z]{2}$"), load_default=None, allow_none=True
    )

    @validates_schema
    def identifier_for_channel(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("channel", "email") in ("sms", "phone"):
            if not data.get("phone"):
                raise ValidationError("A phone number is needed for this channel.", "phone")
        elif not data.get("email"):
            raise ValidationError("Missing data for required field.", "email")

    @post_load
    def upper_country(self, data: dict[str, Any], **_: Any) -> dict[str, Any]:
        if data.get("country"):
            data["country"] = data["country"].upper()
        return data


class SubscriptionResultSchema(Schema):
    subject_id = fields.String(required=True)
    status = fields.Enum(Status, by_value=True, required=True)


# --- preferences -----------------------------------------------------------------------------


class ChangeSchema(StrictSchema):
    channel = fields.String(validate=NAME)
    category = fields.String(validate=NAME)
    purpose = fields.String(validate=NAME)
    status = fields.String(required=True, validate=validate.OneOf(["granted", "withdrawn"]))

    @validates_schema
    def topic(self, data: dict[str, Any], **_: Any) -> None:
        if "purpose" in data:
            if "channel" in data or "category" in data:
                raise ValidationError("A change names a purpose or a channel, not both.", "_schema")
        elif "channel" not in data:
            raise ValidationError("Missing data for required field.", "channel")


class PreferencesPatchSchema(EvidenceFieldsMixin):
    changes = fields.List(
        fields.Nested(ChangeSchema), required=True, validate=validate.Length(min=1, max=200)
    )
    method = fields.String(
        validate=validate.OneOf(["api", "form", "import", "preference_page"]), load_default="api"
    )


class UnsubscribeAllSchema(EvidenceFieldsMixin):
    message_id = _text(200, load_default=None, allow_none=True)
    campaign_id = _text(200, load_default=None, allow_none=True)


class StandingSchema(Schema):
    status = fields.String(allow_none=True)
    updated_at = fields.AwareDateTime(allow_none=True)


class ChannelViewSchema(StandingSchema):
    channel = fields.String()


class PairViewSchema(StandingSchema):
    channel = fields.String()
    category = fields.String()
    allowed = fields.Boolean()
    reason = fields.String()


class PurposeViewSchema(StandingSchema):
    purpose = fields.String()
    allowed = fields.Boolean()
    reason = fields.String()


class PreferencesSchema(Schema):
    subject_id = fields.String(required=True)
    unsubscribed_all = fields.Boolean()
    channels = fields.List(fields.Nested(ChannelViewSchema))
    categories = fields.List(fields.Nested(PairViewSchema))
    purposes = fields.List(fields.Nested(PurposeViewSchema))


# --- subjects --------------------------------------------------------------------------------


class SubjectQuerySchema(StrictSchema):
    email = TrimmedEmail()
    phone = _text(40)
    external_id = _text(200)
    country = fields.String(validate=validate.Regexp(r"^[A-Za-z]{2}$"))

    @validates_schema
    def one_identifier(self, data: dict[str, Any], **_: Any) -> None:
        if len([f for f in ("email", "phone", "external_id") if f in data]) != 1:
            raise ValidationError("Give exactly one of email, phone or external_id.", "_schema")


class SubjectSchema(Schema):
    subject_id = fields.String(attribute="id")
    created_at = fields.AwareDateTime()
    locale = fields.String(allow_none=True)
    country = fields.String(allow_none=True)


class IdentifierLinkSchema(StrictSchema):
    kind = fields.String(required=True, validate=validate.Regexp(r"^[a-z][a-z0-9_]{0,31}$"))
    value = fields.String(required=True, validate=validate.Length(min=1, max=320))
    source = _text(200, load_default=None, allow_none=True)
    country = fields.String(
        validate=validate.Regexp(r"^[A-Za-z]{2}$"), load_default=None, allow_none=True
    )


class IdentifierSchema(Schema):
    id = fields.String(required=True)
    kind = fields.String(required=True)
    value = fields.String(required=True)
    confirmed_at = fields.AwareDateTime(allow_none=True)
    added_at = fields.AwareDateTime(required=True)
    source = fields.String(allow_none=True)


class IdentifiersSchema(Schema):
    identifiers = fields.List(fields.Nested(IdentifierSchema), required=True)


class MergeSchema(StrictSchema):
    subject_id = fields.UUID(required=True)
    source = _text(200, load_default=None, allow_none=True)


class MergeResultSchema(Schema):
    subject_id = fields.String(required=True)
    merged_subject_id = fields.String(required=True)
    identifiers_moved = fields.Integer(required=True)
    choices_changed = fields.Integer(required=True)


class ErasureSchema(Schema):
    subject_id = fields.String()
    erased_at = fields.AwareDateTime()
    identifiers_suppressed = fields.Integer()
    event_id = fields.String()
    kept = fields.Dict()


# --- imports -------------------------------------------------------------------------------


class ImportQuerySchema(StrictSchema):
    dry_run = fields.Boolean(load_default=False)


class ImportStartedSchema(Schema):
    import_id = fields.String(required=True)


class ImportErrorSchema(Schema):
    line = fields.Integer(required=True)
    detail = fields.String(required=True)


class ImportReportSchema(Schema):
    import_id = fields.String(required=True)
    state = fields.String(required=True)
    dry_run = fields.Boolean()
    rows = fields.Integer(required=True)
    applied = fields.Integer(required=True)
    unchanged = fields.Integer(required=True)
    rejected = fields.Integer(required=True)
    chunks = fields.Integer()
    chunks_done = fields.Integer()
    created_at = fields.AwareDateTime()
    finished_at = fields.AwareDateTime(allow_none=True)
    errors = fields.List(fields.Nested(ImportErrorSchema), required=True)


# --- audit -----------------------------------------------------------------------------------


class EventsQuerySchema(StrictSchema):
    after = fields.Integer(load_default=0, validate=validate.Range(min=0, max=2**62))
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=1000))
    subject_id = fields.UUID()


class ExportQuerySchema(StrictSchema):
    format = fields.String(load_default="ndjson", validate=validate.OneOf(["ndjson", "csv"]))
    since = UTCDateTime()
    until = UTCDateTime()
    subject_id = fields.UUID()
    channel = fields.String(validate=NAME)
    category = fields.String(validate=NAME)


class EvidenceSchema(Schema):
    ip = fields.String(allow_none=True)
    user_agent = fields.String(allow_none=True)
    country = fields.String(allow_none=True)


class AuditEventSchema(Schema):
    seq = fields.Integer()
    id = fields.String()
    occurred_at = fields.String()
    subject_id = fields.String(allow_none=True)
    channel = fields.String(allow_none=True)
    category = fields.String(allow_none=True)
    purpose = fields.String(allow_none=True)
    action = fields.String()
    status = fields.String(allow_none=True)
    source = fields.String(allow_none=True)
    actor = fields.String()
    notice_version = fields.String(allow_none=True)
    prev_hash = fields.String()
    hash = fields.String()
    chain_id = fields.String()
    legal_basis = fields.String(allow_none=True)
    method = fields.String()
    capture_point = fields.String(allow_none=True)
    locale = fields.String(allow_none=True)
    notice_sha256 = fields.String(allow_none=True)
    evidence_hash = fields.String(allow_none=True)
    details = fields.Dict(allow_none=True)
    evidence = fields.Nested(EvidenceSchema, allow_none=True)


class EventsPageSchema(Schema):
    events = fields.List(fields.Nested(AuditEventSchema))
    next_after = fields.Integer(allow_none=True)


class VerificationSchema(Schema):
    ok = fields.Boolean(attribute="is_ok")
    events_checked = fields.Integer()
    first_bad_seq = fields.Integer(allow_none=True)
    problem = fields.String(allow_none=True)


# --- notices ---------------------------------------------------------------------------------


class NoticeSchema(StrictSchema):
    key = fields.String(required=True, validate=validate.Regexp(r"^[a-z0-9][a-z0-9_-]{0,63}$"))
    version = fields.String(required=True, validate=validate.Length(min=1, max=64))
    locale = fields.String(required=True, validate=validate.OneOf(LOCALES))
    title = fields.String(required=True, validate=validate.Length(min=1, max=200))
    text = fields.String(required=True, validate=validate.Length(min=1, max=100_000))


class NoticeOutSchema(Schema):
    key = fields.String()
    version = fields.String()
    locale = fields.String()
    title = fields.String()
    text = fields.String()
    sha256 = fields.String()
    published_at = fields.AwareDateTime()


# --- links for a message ---------------------------------------------------------------------


class MessageLinksRequestSchema(StrictSchema):
    channel = fields.String(validate=NAME, load_default="email")
    category = fields.String(validate=NAME, load_default=None, allow_none=True)
    message_id = _text(200, load_default=None, allow_none=True)


class MessageLinksSchema(Schema):
    preference_url = fields.String(required=True)
    unsubscribe_url = fields.String(required=True)
    headers = fields.Dict(keys=fields.String(), values=fields.String(), required=True)
