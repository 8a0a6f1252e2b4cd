"""The wire format of /v1: every query, body and response. openapi.yaml is generated from these
(app/api/openapi.py): a field's `metadata` is its description there, and `x-component` names the
shared shape of openapi_base.yaml it has (a catalog `Name`, a check `Reason`)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from marshmallow import (
    RAISE,
    Schema,
    ValidationError,
    fields,
    post_load,
    validate,
    validates_schema,
)

from app.domain import chain
from app.domain.catalog import LOCALES
from app.domain.vocabulary import CLIENT_METHODS, Action, LegalBasis, Method, Reason, Status

NAME = validate.Regexp(r"^[a-z][a-z0-9_]{0,63}$", error="Not a valid name.")
COUNTRY = validate.Regexp(r"^[A-Za-z]{2}$")
SHA256 = "^[0-9a-f]{64}$"
IDENTIFIER_FIELDS = ("email", "phone", "external_id", "subject_id")
COUNTRY_USE = "ISO 3166-1 alpha-2 country, to read a phone number written without `+`."


class StrictSchema(Schema):
    """Every request schema: unknown fields are errors. (NUL characters never get this far:
    app/api json_body and app/security refuse them at the edge.)"""

    class Meta:
        unknown = RAISE


class UTCDateTime(fields.AwareDateTime):
    """An aware datetime, turned to UTC, between 1970 and 9998: every instant the ledger can
    store, compare and add a statutory month to. Written out as every answer writes a time:
    RFC 3339 in UTC with `Z` (chain.format_time)."""

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> str | None:
        return None if value is None else chain.format_time(value)

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


def shared(component: str, description: str | None = None, **more: Any) -> dict[str, Any]:
    """A field's metadata: the shared shape it has, and what it adds."""
    described = {"description": description} if description else {}
    return {"x-component": component, **described, **more}


def name_field(
    description: str | None = None, *, example: str | None = None, **kwargs: Any
) -> fields.String:
    """A channel, category or purpose name of the catalog."""
    more = {"example": example} if example else {}
    return fields.String(validate=NAME, metadata=shared("Name", description, **more), **kwargs)


def uuid_field(description: str | None = None, **kwargs: Any) -> fields.String:
    """A UUID in an answer (a string there, as the service stores it)."""
    described = {"description": description} if description else {}
    return fields.String(metadata={"format": "uuid", **described}, **kwargs)


def sha256_field(description: str | None = None, **kwargs: Any) -> fields.String:
    return fields.String(metadata=shared("Sha256", description), **kwargs)


class EvidenceFieldsMixin(StrictSchema):
    source = _text(200, load_default=None, allow_none=True)
    ip = fields.IP(load_default=None, allow_none=True, metadata=shared("IpAddress"))
    user_agent = _text(512, load_default=None, allow_none=True)
    notice_version = _text(
        64,
        load_default=None,
        allow_none=True,
        metadata={
            "description": "A published notice version (else `422`); events store its sha256."
        },
    )
    locale = fields.String(validate=validate.OneOf(LOCALES), load_default=None, allow_none=True)


# --- the check ------------------------------------------------------------------------------


class CheckQuerySchema(StrictSchema):
    email = TrimmedEmail(
        metadata={
            "description": "The subject's email address (trimmed, compared case-insensitively).",
            "example": "ada@example.org",
        }
    )
    phone = _text(
        40,
        metadata={"description": "The subject's phone number, E.164 or national with `country`."},
    )
    external_id = _text(200, metadata={"description": "The integrator's own id for the subject."})
    subject_id = fields.UUID()
    country = fields.String(validate=COUNTRY, metadata={"description": COUNTRY_USE})
    channel = name_field("A catalog channel; with `category`.", example="email")
    category = name_field("A catalog category; with `channel`.", example="newsletter")
    purpose = name_field("A catalog processing purpose, in place of `channel` and `category`.")

    @validates_schema
    def one_identifier_one_question(self, data: dict[str, Any], **_: Any) -> None:
        given = [f for f in IDENTIFIER_FIELDS if f in data]
        if len(given) != 1:
            raise ValidationError(
                "Give exactly one of email, phone, external_id or subject_id.", "_schema"
            )
        _one_question(data)


class CheckResultSchema(Schema):
    class Meta:
        example: ClassVar = {
            "allowed": True,
            "reason": "granted",
            "subject_id": "7d6f3c2e-5b1a-4c8e-9f0a-2b3c4d5e6f70",
            "event_id": "0b1c2d3e-4f50-4a6b-8c7d-9e0f1a2b3c4d",
        }

    allowed = fields.Boolean(required=True)
    reason = fields.Enum(Reason, by_value=True, required=True, metadata=shared("Reason"))
    subject_id = uuid_field("The subject, or null when unknown.", allow_none=True)
    event_id = uuid_field(
        "The audit event the answer relied on, where there is one.", allow_none=True
    )
    read_from = fields.String(
        metadata={
            "enum": ["replica"],
            "description": "Present when the answer was read from the read replica\n"
            "(`DATABASE_READ_URL`): a change made in the last moments (replication lag) may not\n"
            "be in it yet.\n",
            "x-optional": True,
        }
    )


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
    class Meta(StrictSchema.Meta):
        description = "Give `channel` and `category`, or `purpose`, as for `GET /v1/consent/check`."

    channel = name_field()
    category = name_field()
    purpose = name_field()
    emails = EmailList(
        required=True,
        validate=validate.Length(min=1, max=10_000),
        metadata={
            "type": "array",
            "items": {"type": "string"},
            "description": "Each entry is normalised as the single check does (email-validator's"
            " form, IDN domains in one form, NFC). An entry that is not an address is answered"
            ' in place with `"reason": "invalid_identifier"`; it does not refuse the batch.',
        },
    )

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
    email = TrimmedEmail(
        metadata={
            "description": "Required unless `channel` is `sms` or `phone`. Trimmed and compared\n"
            "case-insensitively.\n"
        }
    )
    phone = _text(
        40,
        metadata={
            "description": "Required when `channel` is `sms` or `phone`; E.164, or national "
            "with `country`."
        },
    )
    channel = name_field(load_default="email")
    categories = fields.List(
        name_field(),
        required=True,
        validate=validate.Length(min=1, max=50),
        metadata={
            "description": "Marketing categories of the catalog that the channel carries (a "
            "transactional\ncategory has no opt-in and is refused).\n"
        },
    )
    country = fields.String(
        validate=COUNTRY,
        load_default=None,
        allow_none=True,
        metadata={
            "description": "ISO 3166-1 alpha-2; decides double opt-in and reads national phone "
            "numbers."
        },
    )
    locale = fields.String(
        validate=validate.OneOf(LOCALES),
        load_default=None,
        allow_none=True,
        metadata={"description": "The language of the confirmation mail and of the notice shown."},
    )
    source = _text(
        200,
        load_default=None,
        allow_none=True,
        metadata={"description": "Where the opt-in was captured (a form, a campaign)."},
    )
    notice_version = _text(
        64,
        load_default=None,
        allow_none=True,
        metadata={
            "description": "The published notice version the person was shown; one never "
            "published is a `422`. The events store the version and its text's sha256."
        },
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
    subject_id = uuid_field(required=True)
    status = fields.String(
        required=True,
        validate=validate.OneOf([Status.PENDING.value, Status.GRANTED.value]),
        metadata={"description": "`pending` until the double opt-in is confirmed."},
    )


# --- preferences -----------------------------------------------------------------------------


class ChangeSchema(StrictSchema):
    class Meta(StrictSchema.Meta):
        description = "A `channel` (with or without `category`) or a `purpose`, and the new status."

    channel = name_field()
    category = name_field()
    purpose = name_field()
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
        validate=validate.OneOf(
            [str(m) for m in CLIENT_METHODS],
            error="Must be one of: {choices}; the others are recorded only by the service's "
            "own pages.",
        ),
        load_default="api",
        metadata={
            "description": "How the person made the change, recorded on the events. "
            "`preference_page`, `double_opt_in`, `one_click_unsubscribe` and `gpc` are recorded "
            "only by the service's own pages (a 422 from a client), because Global Privacy "
            "Control yields only to a choice the person made on the preference page."
        },
    )


class UnsubscribeAllSchema(EvidenceFieldsMixin):
    message_id = _text(
        200,
        load_default=None,
        allow_none=True,
        metadata={
            "description": "The message the person unsubscribed from, recorded on the event."
        },
    )
    campaign_id = _text(200, load_default=None, allow_none=True)


class StandingSchema(Schema):
    status = fields.String(allow_none=True, metadata=shared("Standing"))
    updated_at = UTCDateTime(allow_none=True)


class ChannelViewSchema(StandingSchema):
    channel = fields.String()


class PairViewSchema(StandingSchema):
    channel = fields.String()
    category = fields.String()
    allowed = fields.Boolean()
    reason = fields.String(metadata=shared("Reason"))


class PurposeViewSchema(StandingSchema):
    purpose = fields.String()
    allowed = fields.Boolean()
    reason = fields.String(metadata=shared("Reason"))


class PreferencesSchema(Schema):
    subject_id = uuid_field(required=True)
    unsubscribed_all = fields.Boolean(
        metadata={"description": 'The latest "unsubscribe from all" stands.'}
    )
    channels = fields.List(
        fields.Nested(ChannelViewSchema), metadata={"description": "Every channel of the catalog."}
    )
    categories = fields.List(
        fields.Nested(PairViewSchema),
        metadata={"description": "Every marketing (channel, category) pair of the catalog."},
    )
    purposes = fields.List(
        fields.Nested(PurposeViewSchema),
        metadata={"description": "Every processing purpose of the catalog."},
    )


# --- subjects --------------------------------------------------------------------------------


class SubjectQuerySchema(StrictSchema):
    email = TrimmedEmail(metadata={"example": "ada@example.org"})
    phone = _text(40)
    external_id = _text(200)
    country = fields.String(validate=COUNTRY, metadata={"description": COUNTRY_USE})

    @validates_schema
    def one_identifier(self, data: dict[str, Any], **_: Any) -> None:
        if len([f for f in ("email", "phone", "external_id") if f in data]) != 1:
            raise ValidationError("Give exactly one of email, phone or external_id.", "_schema")


class SubjectSchema(Schema):
    subject_id = uuid_field(attribute="id")
    created_at = UTCDateTime()
    locale = fields.String(allow_none=True)
    country = fields.String(allow_none=True)


class ErasureSchema(Schema):
    subject_id = uuid_field()
    erased_at = UTCDateTime()
    identifiers_suppressed = fields.Integer(
        metadata={
            "minimum": 0,
            "description": "How many identifiers are now kept only as suppression hashes.",
        }
    )
    event_id = uuid_field("The `erase` audit event.")
    kept = fields.Dict(
        metadata={
            "description": "What is kept after erasure, and why.",
            "required": ["suppression", "proof"],
            "properties": {"suppression": {"type": "string"}, "proof": {"type": "string"}},
        }
    )


# --- audit -----------------------------------------------------------------------------------


class EventsQuerySchema(StrictSchema):
    after = fields.Integer(load_default=0, validate=validate.Range(min=0, max=2**62))
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=1000))
    subject_id = fields.UUID(metadata={"description": "Only events about this subject."})


class ExportQuerySchema(StrictSchema):
    format = fields.String(load_default="ndjson", validate=validate.OneOf(["ndjson", "csv"]))
    since = UTCDateTime(metadata=shared("Instant", example="2024-01-01T00:00:00Z"))
    until = UTCDateTime(metadata=shared("Instant"))
    subject_id = fields.UUID()
    channel = name_field()
    category = name_field()


class EvidenceSchema(Schema):
    ip = fields.String(allow_none=True)
    user_agent = fields.String(allow_none=True)
    country = fields.String(allow_none=True)


# What the API description says of each event field; the fields themselves are chain.FIELDS.
_EVENT_DOCS: dict[str, dict[str, Any]] = {
    "seq": {"minimum": 1},
    "id": {"format": "uuid"},
    "occurred_at": {"format": "date-time"},
    "subject_id": {"format": "uuid"},
    "action": {"enum": [a.value for a in Action]},
    "status": shared("Standing"),
    "actor": {"description": "`client:<client_id>`, `subject`, or `system`."},
    "prev_hash": shared("Sha256"),
    "hash": shared("Sha256"),
    "legal_basis": {"enum": [*(b.value for b in LegalBasis), None]},
    "method": {"enum": [m.value for m in Method]},
    "notice_sha256": {"pattern": SHA256},
    "evidence_hash": {"pattern": SHA256},
    "details": {
        "description": "Action-specific facts (never personal data), e.g. the confirmed request."
    },
}
_EVENT_WIRE: dict[str, type[fields.Field[Any]]] = {
    "int": fields.Integer,
    "str": fields.String,
    "time": fields.String,  # already spelt by chain.format_time
    "json": fields.Dict,
}


class _AuditEventShape(Schema):
    class Meta:
        description = (
            "One append-only event. `hash` is the SHA-256 of the event's canonical form, which\n"
            "includes `prev_hash`, the hash of the event before it in its chain; the first "
            "event's\n`prev_hash` is 64 zeros. The canonical form holds no personal data: IP "
            "and user agent\nsit in `evidence`, named by `evidence_hash`, and are deleted on "
            "erasure.\n"
        )


AuditEventSchema = _AuditEventShape.from_dict(
    {
        f.name: _EVENT_WIRE[f.kind](allow_none=f.is_nullable, metadata=_EVENT_DOCS.get(f.name, {}))
        for f in chain.FIELDS
    }
    | {
        "evidence": fields.Nested(
            EvidenceSchema,
            allow_none=True,
            metadata={
                "description": "The act's evidence while the subject exists; null once erased."
            },
        )
    },
    name="AuditEventSchema",
)


class EventsPageSchema(Schema):
    events = fields.List(fields.Nested(AuditEventSchema))
    next_after = fields.Integer(
        allow_none=True,
        metadata={"description": "Pass as `after` for the next page; null on the last page."},
    )


class NoticeNameSchema(Schema):
    """The notice version that failed (its key and locale when known)."""

    key = fields.String(allow_none=True)
    version = fields.String()
    locale = fields.String(allow_none=True)


class StateNameSchema(Schema):
    """The current-state row that failed ('' = not applicable)."""

    subject_id = fields.String()
    channel = fields.String()
    category = fields.String()
    purpose = fields.String()


class VerificationCountsSchema(Schema):
    """How many of each record were checked."""

    events = fields.Integer()
    notices = fields.Integer()
    evidence = fields.Integer()
    checkpoints = fields.Integer()
    states = fields.Integer()


class VerificationSchema(Schema):
    """The contract's three fields, then what failed and where, and what was checked."""

    ok = fields.Boolean()
    events_checked = fields.Integer(metadata={"minimum": 0})
    first_bad_seq = fields.Integer(
        allow_none=True,
        metadata={"description": "The first bad event, or the event where the bad record is."},
    )
    problem = fields.String(
        allow_none=True, metadata={"description": "What is wrong, when `ok` is false."}
    )
    record = fields.String(
        allow_none=True,
        validate=validate.OneOf(["event", "notice", "evidence", "checkpoint", "state"]),
        metadata={"description": "Which kind of record failed."},
    )
    notice = fields.Nested(
        NoticeNameSchema, allow_none=True, metadata={"description": "The notice that failed."}
    )
    evidence_hash = fields.String(
        allow_none=True,
        metadata={"description": "The evidence row that failed, by the hash its event names."},
    )
    state = fields.Nested(
        StateNameSchema, allow_none=True, metadata={"description": "The state row that failed."}
    )
    checked = fields.Nested(VerificationCountsSchema)


# --- notices ---------------------------------------------------------------------------------


class NoticeSchema(StrictSchema):
    key = fields.String(
        required=True,
        validate=validate.Regexp(r"^[a-z0-9][a-z0-9_-]{0,63}$"),
        metadata={"description": "Which notice, e.g. `marketing-consent`."},
    )
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
    sha256 = sha256_field("SHA-256 of `text`, recorded on every event that names this version.")
    published_at = UTCDateTime()


# --- links for a message ---------------------------------------------------------------------


class MessageLinksRequestSchema(StrictSchema):
    channel = name_field("A channel of the catalog.", load_default="email")
    category = fields.String(
        validate=NAME,
        load_default=None,
        allow_none=True,
        metadata={
            "description": "A marketing category the catalog allows on the channel; left out = "
            "the whole channel."
        },
    )
    message_id = _text(
        200,
        load_default=None,
        allow_none=True,
        metadata={"description": "The message or campaign id, recorded on the withdrawal event."},
    )


class MessageLinksSchema(Schema):
    preference_url = fields.String(required=True, metadata={"format": "uri"})
    unsubscribe_url = fields.String(required=True, metadata={"format": "uri"})
    headers = fields.Dict(
        keys=fields.String(),
        values=fields.String(),
        required=True,
        metadata={
            "required": ["List-Unsubscribe", "List-Unsubscribe-Post"],
            "properties": {
                "List-Unsubscribe": {
                    "type": "string",
                    "description": "The unsubscribe URL in angle brackets (RFC 2369).",
                },
                "List-Unsubscribe-Post": {
                    "type": "string",
                    "enum": ["List-Unsubscribe=One-Click"],
                },
            },
        },
    )
