"""The tables. Plain SQLAlchemy 2 typed mappings; Flask-SQLAlchemy only binds them.

Personal data lives in `SubjectIdentifier`, `Evidence`, `OutboxMessage` and `AccessLog`, and
erasure deletes those rows; `ConsentEvent` holds none, so the chain outlives a person.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import uuid_utils
from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    true,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, registry

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, on SQLite and PostgreSQL alike."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    registry = registry(
        metadata=MetaData(naming_convention=NAMING), type_annotation_map={datetime: UTCDateTime}
    )


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    """A new row's id: a UUIDv7 (RFC 9562), whose leading milliseconds put the newest keys
    next to each other in an index, so that inserts touch its last pages instead of any page
    (an import of 1M rows spent a quarter of its time on pages a random UUIDv4 sent it to).
    The millisecond it was made can be read from it; ids are no secret, and every event and
    row carries its time anyway."""
    return str(uuid_utils.uuid7())


class Subject(Base):
    __tablename__ = "subjects"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    created_at: Mapped[datetime]
    locale: Mapped[str | None] = mapped_column(String(16))
    country: Mapped[str | None] = mapped_column(String(2))
    erased_at: Mapped[datetime | None]
    # A merged-away subject answers as the one it was merged into.
    merged_into: Mapped[str | None] = mapped_column(String(36))


class SubjectIdentifier(Base):
    """An identifier, found by its HMAC; the plain value goes when the person is erased.

    `confirmed_at` is this contact point's own proof: a second address is usable only once
    it was confirmed itself.
    """

    __tablename__ = "subject_identifiers"

    hmac: Mapped[str] = mapped_column(String(64), primary_key=True)
    id: Mapped[str] = mapped_column(String(36), unique=True)
    subject_id: Mapped[str] = mapped_column(ForeignKey("subjects.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    value: Mapped[str] = mapped_column(String(320))
    created_at: Mapped[datetime]
    source: Mapped[str | None] = mapped_column(String(200))
    confirmed_at: Mapped[datetime | None]


class Suppression(Base):
    """An erased identifier, kept only as its HMAC, so a re-import grants nothing."""

    __tablename__ = "suppressions"

    hmac: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]
    lifted_at: Mapped[datetime | None]


class IdentifierVariant(Base):
    """A suppression key an identifier answers to beyond its own HMAC (its mailbox's, and
    its own and its mailbox's under each key of the ring), stored so that one statement can
    ask whether any identifier of a subject is under suppression.

    A pure function of the identifier (its HMAC fixes its kind and value) and the ring,
    which `ring` names: rows made under another ring are never read, and an identifier
    with none under the current ring is keyed in Python as before (`suppression`).
    """

    __tablename__ = "identifier_variants"

    # Deleted with the identifier (erasure, unlinking, retention); moved with it by a re-keying
    # (the keys are a function of its kind and value, not of its HMAC).
    identifier_hmac: Mapped[str] = mapped_column(
        ForeignKey("subject_identifiers.hmac", ondelete="CASCADE", onupdate="CASCADE"),
        primary_key=True,
    )
    ring: Mapped[str] = mapped_column(String(16), primary_key=True)
    key: Mapped[str] = mapped_column(String(64), primary_key=True)


class NoticeVersion(Base):
    """The exact text shown to a person; published once, never changed."""

    __tablename__ = "notice_versions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(64))
    version: Mapped[str] = mapped_column(String(64))
    locale: Mapped[str] = mapped_column(String(16))
    title: Mapped[str] = mapped_column(String(200))
    text: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    published_at: Mapped[datetime]
    # Whether the public pages may show it: only the shipped texts and versions published with
    # notices:publish. Any version can be cited by events; wording is shown only by choice.
    is_shown: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())

    __table_args__ = (
        Index("uq_notice_key_version_locale", "key", "version", "locale", unique=True),
    )


class Evidence(Base):
    """Session evidence for one act (IP, user agent, …), named from events by its hash.

    The hash covers a random nonce, so the chain reveals nothing once the row is deleted.
    """

    __tablename__ = "evidence"

    hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    subject_id: Mapped[str | None] = mapped_column(String(36), index=True)
    nonce: Mapped[str] = mapped_column(String(32))
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(512))
    country: Mapped[str | None] = mapped_column(String(2))
    details: Mapped[str | None] = mapped_column(Text)  # canonical JSON
    created_at: Mapped[datetime]


class ConsentEvent(Base):
    """One append-only, hash-chained event. The application never updates or deletes one.

    Its columns are chain.FIELDS, in that order.
    """

    __tablename__ = "consent_events"

    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False
    )
    id: Mapped[str] = mapped_column(String(36), unique=True)
    occurred_at: Mapped[datetime]
    subject_id: Mapped[str | None] = mapped_column(String(36))
    channel: Mapped[str | None] = mapped_column(String(32))
    category: Mapped[str | None] = mapped_column(String(64))
    purpose: Mapped[str | None] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(32))
    status: Mapped[str | None] = mapped_column(String(16))
    source: Mapped[str | None] = mapped_column(String(200))
    actor: Mapped[str] = mapped_column(String(200))
    notice_version: Mapped[str | None] = mapped_column(String(64))
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    chain_id: Mapped[str] = mapped_column(String(32))
    legal_basis: Mapped[str | None] = mapped_column(String(32))
    method: Mapped[str] = mapped_column(String(32))
    capture_point: Mapped[str | None] = mapped_column(String(200))
    locale: Mapped[str | None] = mapped_column(String(16))
    notice_sha256: Mapped[str | None] = mapped_column(String(64))
    evidence_hash: Mapped[str | None] = mapped_column(String(64))
    details: Mapped[str | None] = mapped_column(Text)  # canonical JSON, never personal data

    __table_args__ = (
        Index("ix_consent_events_subject_seq", "subject_id", "seq"),
        Index("ix_consent_events_occurred_at", "occurred_at"),
        Index("uq_consent_events_chain_seq", "chain_id", "seq", unique=True),
    )

    def record(self) -> dict[str, Any]:
        return {column.key: getattr(self, column.key) for column in self.__table__.columns}


class ChainHead(Base):
    """The tip of each chain, locked by every writer so the chain stays one straight line.

    base_* is where verification starts (genesis, or the anchor left by retention).
    """

    __tablename__ = "chain_heads"

    chain_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    last_seq: Mapped[int] = mapped_column(BigInteger)
    last_hash: Mapped[str] = mapped_column(String(64))
    base_seq: Mapped[int] = mapped_column(BigInteger)
    base_hash: Mapped[str] = mapped_column(String(64))


class ConsentState(Base):
    """The current standing per (subject, topic), written with its event: a check reads this."""

    __tablename__ = "consent_state"

    subject_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    channel: Mapped[str] = mapped_column(String(32), primary_key=True)
    category: Mapped[str] = mapped_column(String(64), primary_key=True)
    purpose: Mapped[str] = mapped_column(String(64), primary_key=True)
    status: Mapped[str] = mapped_column(String(16))
    event_seq: Mapped[int] = mapped_column(BigInteger)
    event_id: Mapped[str] = mapped_column(String(36))
    occurred_at: Mapped[datetime]
    # When the choice was made, where it was made elsewhere (an imported row); else NULL.
    consented_at: Mapped[datetime | None]

    __table_args__ = (Index("ix_consent_state_event_seq", "event_seq"),)


class OAuthClient(Base):
    __tablename__ = "oauth_clients"

    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    secret_hash: Mapped[str] = mapped_column(String(200))
    scopes: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


class SubscriptionRequest(Base):
    """A double opt-in request: what was asked, by whom, and the token that confirms it."""

    __tablename__ = "subscription_requests"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    subject_id: Mapped[str] = mapped_column(String(36), index=True)
    identifier_hmac: Mapped[str] = mapped_column(String(64), index=True)
    channel: Mapped[str] = mapped_column(String(32))
    categories: Mapped[str] = mapped_column(Text)  # JSON list
    locale: Mapped[str | None] = mapped_column(String(16))
    notice_version: Mapped[str | None] = mapped_column(String(64))
    source: Mapped[str | None] = mapped_column(String(200))
    token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    mailed_at: Mapped[datetime | None]
    message_id: Mapped[str | None] = mapped_column(String(200))
    confirmed_at: Mapped[datetime | None]
    request_evidence_hash: Mapped[str | None] = mapped_column(String(64))
    confirm_evidence_hash: Mapped[str | None] = mapped_column(String(64))


class OutboxMessage(Base):
    """Mail written in the same transaction as the events it belongs to, sent by the worker."""

    __tablename__ = "outbox_messages"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    subject_id: Mapped[str | None] = mapped_column(String(36), index=True)
    message_id: Mapped[str] = mapped_column(String(200), unique=True)
    to_address: Mapped[str | None] = mapped_column(String(320))
    template: Mapped[str] = mapped_column(String(64))
    template_version: Mapped[str] = mapped_column(String(64))
    template_sha256: Mapped[str] = mapped_column(String(64))
    locale: Mapped[str] = mapped_column(String(16))
    mail_subject: Mapped[str] = mapped_column(String(300))
    body_text: Mapped[str | None] = mapped_column(Text)
    body_html: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(16), default="queued")  # queued | sent | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime]
    last_error: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[datetime | None]

    __table_args__ = (Index("ix_outbox_due", "status", "next_attempt_at"),)


class UsedToken(Base):
    """Single-use links: the hash of each one spent, kept until it would have expired anyway."""

    __tablename__ = "used_tokens"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    purpose: Mapped[str] = mapped_column(String(32))
    used_at: Mapped[datetime]
    expires_at: Mapped[datetime]


class AccessSession(Base):
    """A session opened by a fresh mailbox proof, for seeing personal data."""

    __tablename__ = "access_sessions"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    subject_id: Mapped[str] = mapped_column(String(36), index=True)
    created_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    expires_at: Mapped[datetime]


class AccessLog(Base):
    """When and from where a person's pages were opened (shown to them; erased with them)."""

    __tablename__ = "access_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    subject_id: Mapped[str] = mapped_column(String(36), index=True)
    occurred_at: Mapped[datetime]
    page: Mapped[str] = mapped_column(String(64))
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(512))


class RightsRequest(Base):
    """A data-subject request (access, download, erasure) with its statutory dates."""

    __tablename__ = "rights_requests"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    subject_id: Mapped[str] = mapped_column(String(36), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # access | download | erasure
    received_at: Mapped[datetime]
    due_at: Mapped[datetime]
    answered_at: Mapped[datetime | None]
    channel: Mapped[str | None] = mapped_column(String(32))  # where it came in: web, api, email
    note: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index("ix_rights_requests_open", "answered_at", "due_at"),)


class Webhook(Base):
    """A receiver of changes: where to POST them, which types, and the secrets that sign them.

    During a rotation the previous secret also signs (a second signature) until it expires.
    """

    __tablename__ = "webhooks"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    url: Mapped[str] = mapped_column(String(2000))
    events: Mapped[str] = mapped_column(Text)  # space-separated event types
    secret: Mapped[str] = mapped_column(String(100))
    previous_secret: Mapped[str | None] = mapped_column(String(100))
    previous_secret_expires_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(200))
    disabled_at: Mapped[datetime | None]
    disabled_reason: Mapped[str | None] = mapped_column(String(500))
    # A worker's claim on this receiver while it sends, so deliveries keep their order.
    lease_until: Mapped[datetime | None]


class WebhookDelivery(Base):
    """One change for one receiver: written with the change, sent and logged by the worker.

    No answer body is kept, only its status, latency and how often it was tried.
    """

    __tablename__ = "webhook_deliveries"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # the webhook-id header
    webhook_id: Mapped[str] = mapped_column(ForeignKey("webhooks.id", ondelete="CASCADE"))
    event_seq: Mapped[int] = mapped_column(BigInteger)
    event_type: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))  # pending | delivered | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime]
    next_attempt_at: Mapped[datetime]
    last_attempt_at: Mapped[datetime | None]
    delivered_at: Mapped[datetime | None]
    response_status: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(String(500))

    __table_args__ = (
        Index("ix_webhook_deliveries_queue", "webhook_id", "status", "event_seq"),
        Index("ix_webhook_deliveries_log", "webhook_id", "created_at"),
        Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
    )


class JobRun(Base):
    """A scheduled job's claim row: a worker runs the job only if it moves `next_due_at` on
    first, in one conditional UPDATE, so of several workers exactly one runs each turn."""

    __tablename__ = "job_runs"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    next_due_at: Mapped[datetime]
    claimed_by: Mapped[str | None] = mapped_column(String(128))
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    outcome: Mapped[str | None] = mapped_column(Text)


class RateLimitCounter(Base):
    """A rate-limit window's count, shared by every worker and instance (app/limits.py)."""

    __tablename__ = "rate_limit_counters"

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    count: Mapped[int] = mapped_column(Integer)
    expires_at: Mapped[float] = mapped_column(Float)  # epoch seconds, as the limits library


class ImportJob(Base):
    """An uploaded list of choices, applied chunk by chunk by the worker."""

    __tablename__ = "imports"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    state: Mapped[str] = mapped_column(String(16))  # queued | running | done | failed
    is_dry_run: Mapped[bool]
    actor: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    chunks: Mapped[int] = mapped_column(Integer, default=0)
    chunks_done: Mapped[int] = mapped_column(Integer, default=0)
    rows: Mapped[int] = mapped_column(Integer, default=0)
    applied: Mapped[int] = mapped_column(Integer, default=0)
    unchanged: Mapped[int] = mapped_column(Integer, default=0)
    rejected: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index("ix_imports_state", "state", "created_at"),)


class ImportChunk(Base):
    """A slice of an uploaded file's lines; deleted once applied (it holds personal data)."""

    __tablename__ = "import_chunks"

    import_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    number: Mapped[int] = mapped_column(Integer, primary_key=True)
    first_line: Mapped[int] = mapped_column(Integer)
    header: Mapped[str | None] = mapped_column(Text)  # the CSV header row, or NULL for NDJSON
    body: Mapped[str] = mapped_column(Text)


class ImportRejection(Base):
    """One refused line of an import, and why."""

    __tablename__ = "import_errors"

    import_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    line: Mapped[int] = mapped_column(Integer, primary_key=True)
    detail: Mapped[str] = mapped_column(Text)


class DerivedDatum(Base):
    """A datum worked out about a person rather than given by them, with how and from what.

    Shown to the person as estimated, put in their download, and erased with them.
    """

    __tablename__ = "derived_data"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    subject_id: Mapped[str] = mapped_column(String(36), index=True)
    key: Mapped[str] = mapped_column(String(64))  # the inventory item, e.g. estimated_country
    value: Mapped[str] = mapped_column(String(200))
    source: Mapped[str] = mapped_column(String(64))  # what it was derived from: ip_address
    method: Mapped[str] = mapped_column(String(200))
    capture_point: Mapped[str | None] = mapped_column(String(200))
    derived_at: Mapped[datetime]
