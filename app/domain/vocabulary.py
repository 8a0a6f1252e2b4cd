"""The words of the ledger; each enum's values are the strings on the wire and in the chain."""

from enum import StrEnum


class Status(StrEnum):
    GRANTED = "granted"
    PENDING = "pending"
    WITHDRAWN = "withdrawn"


class Reason(StrEnum):
    GRANTED = "granted"
    TRANSACTIONAL = "transactional"
    NO_RECORD = "no_record"
    PENDING_CONFIRMATION = "pending_confirmation"
    WITHDRAWN = "withdrawn"
    UNSUBSCRIBED_ALL = "unsubscribed_all"
    EXPIRED = "expired"
    SUPPRESSED = "suppressed"
    INVALID_IDENTIFIER = "invalid_identifier"  # the batch check's answer for a non-address


class Action(StrEnum):
    REQUEST = "request"  # an opt-in awaiting double opt-in confirmation
    GRANT = "grant"
    CONFIRM = "confirm"
    WITHDRAW = "withdraw"
    UNSUBSCRIBE_ALL = "unsubscribe_all"
    ERASE = "erase"
    SUPPRESSION_LIFTED = "suppression_lifted"
    NOTICE_PUBLISHED = "notice_published"
    CHECKPOINT = "checkpoint"
    RETENTION_RUN = "retention_run"


class LegalBasis(StrEnum):
    CONSENT = "consent"
    SOFT_OPT_IN = "soft_opt_in"
    LEGITIMATE_INTEREST = "legitimate_interest"
    CONTRACT = "contract"
    LEGAL_OBLIGATION = "legal_obligation"


class Method(StrEnum):
    FORM = "form"
    DOUBLE_OPT_IN = "double_opt_in"
    PREFERENCE_PAGE = "preference_page"
    ONE_CLICK_UNSUBSCRIBE = "one_click_unsubscribe"
    API = "api"
    IMPORT = "import"
    GPC = "gpc"
    ADMIN = "admin"
    SYSTEM = "system"


# What an API client may say it used. The rest (preference_page, double_opt_in, gpc,
# one_click_unsubscribe, ...) only the service's own pages record: GPC trusts them.
CLIENT_METHODS = (Method.API, Method.FORM, Method.IMPORT)


class CategoryKind(StrEnum):
    MARKETING = "marketing"
    TRANSACTIONAL = "transactional"


class IdentifierKind(StrEnum):
    EMAIL = "email"
    PHONE = "phone"
    EXTERNAL_ID = "external_id"


class Scope(StrEnum):
    CONSENT_READ = "consent:read"
    CONSENT_WRITE = "consent:write"
    SUBJECTS_MANAGE = "subjects:manage"
    AUDIT_READ = "audit:read"
    AUDIT_WRITE = "audit:write"  # append to the trail: checkpoints
    NOTICES_PUBLISH = "notices:publish"  # publish the wording events cite and pages show


ALL_SCOPES = frozenset(Scope)
