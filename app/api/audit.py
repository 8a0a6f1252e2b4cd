"""The audit trail for DPOs: pages, streamed exports, and verification."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response
from flask.typing import ResponseReturnValue

from app.api import dump, load_args, load_body, streamed
from app.api.audit_schemas import CheckpointSchema, PackageQuerySchema
from app.api.schemas import (
    EventsPageSchema,
    EventsQuerySchema,
    ExportQuerySchema,
    StrictSchema,
    VerificationSchema,
)
from app.auth import require
from app.domain.vocabulary import Scope
from app.http import rules, session, signing_keys
from app.services.audit import checkpoints, package, trail

bp = Blueprint("audit", __name__)

_events_query = EventsQuerySchema()
_export_query = ExportQuerySchema()
_page = EventsPageSchema()
_verification = VerificationSchema()
_no_fields = StrictSchema()


@bp.get("/audit/events")
@require(Scope.AUDIT_READ)
def events() -> ResponseReturnValue:
    """Page through the audit trail.

    ---
    tags: [audit]
    operationId: listAuditEvents
    description: |
      Events with `seq` greater than `after`, in `seq` order. `next_after` is the cursor of
      the next page, or null when this page is the last.
    parameters:
    - in: query
      schema: EventsQuerySchema
    responses:
      '200':
        description: One page.
        content:
          application/json:
            schema: EventsPageSchema
    """
    args = load_args(_events_query)
    subject_id = str(args["subject_id"]) if "subject_id" in args else None
    found, next_after = trail.page(
        session(), trail.EventFilter(after=args["after"], subject_id=subject_id), args["limit"]
    )
    return dump(_page, {"events": found, "next_after": next_after})


def _filters(args: dict[str, Any]) -> trail.EventFilter:
    return trail.EventFilter(
        subject_id=str(args["subject_id"]) if "subject_id" in args else None,
        since=args.get("since"),
        until=args.get("until"),
        channel=args.get("channel"),
        category=args.get("category"),
    )


@bp.get("/audit/export")
@require(Scope.AUDIT_READ)
def export() -> ResponseReturnValue:
    """Stream every matching event.

    ---
    tags: [audit]
    operationId: exportAuditTrail
    description: |
      Streams every matching event in `seq` order, in constant memory however long the
      trail. `ndjson`: one `AuditEvent` JSON object per line. `csv`: a header row, then
      one row per event with the columns `seq, id, occurred_at, subject_id, channel,
      category, purpose, action, status, source, actor, notice_version, prev_hash, hash,
      chain_id, legal_basis, method, capture_point, locale, notice_sha256, evidence_hash,
      details, ip, user_agent, country` (`details` as JSON, empty cells for null).
      `since` is inclusive, `until` exclusive.
    parameters:
    - in: query
      schema: ExportQuerySchema
    responses:
      '200':
        description: The events, streamed as an attachment.
        headers:
          Content-Disposition:
            schema: {type: string}
            example: attachment; filename="audit-trail.ndjson"
        content:
          application/x-ndjson:
            schema: {type: string}
          text/csv:
            schema: {type: string}
    """
    args = load_args(_export_query)
    filters = _filters(args)
    if args["format"] == "csv":
        render, mimetype, suffix = trail.to_csv, "text/csv", "csv"
    else:
        render, mimetype, suffix = trail.to_ndjson, "application/x-ndjson", "ndjson"
    return Response(
        streamed(lambda own: render(trail.iter_events(own, filters)), replica=True),
        mimetype=mimetype,
        headers={"Content-Disposition": f'attachment; filename="audit-trail.{suffix}"'},
    )


@bp.get("/audit/verify")
@require(Scope.AUDIT_READ)
def verify() -> ResponseReturnValue:
    """Verify the chain and every record the proof rests on.

    ---
    tags: [audit]
    operationId: verifyAuditTrail
    description: |
      One streaming pass over the events in `seq` order (memory stays flat however long
      the trail) that checks:

      - the chain: every event's hash and its link to the one before, from the base to the
        recorded head (a changed, deleted, inserted or reordered event, a cut-off tail);
      - each stored notice text against its sha256, against the `notice_published` event
        that published it, and against the `notice_sha256` of every event citing it;
      - each evidence row (IP, user agent, ...) against the `evidence_hash` its event holds
        (rows erasure or retention removed are not missing: they are gone by design);
      - each checkpoint's signature with the service's keys, and that it signed the event
        before it (so history rewritten under a checkpoint, with every later hash
        recomputed, is caught);
      - the current state (`consent_state`, what the check reads) against the state the
        events derive: every row repeats the event it names, no later event changed it,
        none is missing, none survives an erasure.

      `ok` is false, with `first_bad_seq`, `problem`, and `record` saying which kind of
      record failed (`event`, `notice`, `evidence`, `checkpoint`, `state`), plus `notice`,
      `evidence_hash` or `state` naming it. `consent-center audit verify` prints the same
      object and exits 1 on a failure.
    responses:
      '200':
        description: The verdict.
        content:
          application/json:
            schema: VerificationSchema
    """
    report = trail.verify(session(), keys=signing_keys().verifying())
    return dump(_verification, report.as_dict())


_package_query = PackageQuerySchema()
_checkpoint = CheckpointSchema()


@bp.get("/audit/package")
@require(Scope.AUDIT_READ)
def dpo_package() -> ResponseReturnValue:
    """Stream the DPO package (events, notices, Art. 30 record, proof).

    ---
    tags: [audit]
    operationId: exportAuditPackage
    description: |
      NDJSON, one typed record a line, streamed in constant memory:

      - `header` (signed: format, chain id, creation time, `complete`, the filters, the
        chain's base and head `base_seq`, `base_hash`, `head_seq`, `head_hash`);
      - `key` (the JWK set, as `GET /.well-known/jwks.json` serves it);
      - `catalog` (each category's and purpose's legal basis, recipients and retention:
        the Art. 30 record);
      - `notice` (every notice text the events point to, with its SHA-256);
      - `event` (the `AuditEvent` fields plus `"type": "event"`, in `seq` order, up to the
        signed head; its `evidence` also carries `nonce`, `details` and `created_at`, what
        the `evidence_hash` covers, so a verifier can recompute it);
      - `checkpoint` (filtered packages only; in a complete one the checkpoints are events);
      - a signed `trailer` (event count and digest, and `records`: a SHA-256 over each kind
        of other record, `key`, `catalog`, `notice` and `checkpoint`).

      Format `consent-center-audit-package/2`. `consent-center audit verify --file --key`
      checks every record: unknown record types fail, the key record must be the key it
      verifies with, notice texts must match their hash and the events citing them, each
      event's evidence its `evidence_hash`, and the other records the signed trailer.

      The signatures are compact JWS (ES256) verifiable with `GET /.well-known/jwks.json`;
      `consent-center audit verify --file PACKAGE --key JWKS` checks a package with no
      database. With no filter the package is `complete` and verifies link by link from the
      chain's base to its head; a filtered package proves each event's hash, their order and
      that none was added or removed, but not how they link into the chain. `since` is
      inclusive, `until` exclusive.
    parameters:
    - in: query
      schema: PackageQuerySchema
    responses:
      '200':
        description: The package, streamed as an attachment.
        headers:
          Content-Disposition:
            schema: {type: string}
            example: attachment; filename="audit-package.ndjson"
        content:
          application/x-ndjson:
            schema: {type: string}
            example: |
              {"type":"header","format":"consent-center-audit-package/2","complete":true,"base_seq":0,"head_seq":42,"jws":"eyJ..."}
              {"type":"trailer","events":42,"digest":"9f2c...","records":{"key":"1d0e...","catalog":"77ab...","notice":"c3f1...","checkpoint":"e3b0..."},"jws":"eyJ..."}
    """
    args = load_args(_package_query)
    filters = _filters(args)
    keys, catalog = signing_keys(), rules().catalog.as_dict()
    return Response(
        streamed(lambda own: package.stream(own, filters, keys, catalog)),
        mimetype="application/x-ndjson",
        headers={"Content-Disposition": 'attachment; filename="audit-package.ndjson"'},
    )


@bp.post("/audit/checkpoints")
@require(Scope.AUDIT_WRITE)
def create_checkpoint() -> ResponseReturnValue:
    """Sign the chain's head now.

    ---
    tags: [audit]
    operationId: createCheckpoint
    description: |
      Signs `{typ, chain_id, seq, hash, base_seq, base_hash, time}` of the current head as a
      compact JWS (ES256, verifiable with `GET /.well-known/jwks.json`) and appends it as a
      `checkpoint` audit event (its `details` hold `seq`, `hash` and `jws`). Checkpoints are
      also written by `consent-center audit checkpoint --if-due` (every `CHECKPOINT_EVERY`
      events, for cron) and by every retention run. Send no body; a body that is sent must
      be an empty JSON object. It appends to the trail, so it needs `audit:write`.
    requestBody:
      required: false
      content:
        application/json:
          schema: {$ref: '#/components/schemas/CheckpointRequest'}
    responses:
      '201':
        description: The checkpoint.
        content:
          application/json:
            schema: CheckpointSchema
    """
    load_body(_no_fields, optional=True)  # nothing to send; a body that is sent must be valid
    return dump(_checkpoint, checkpoints.create(session(), signing_keys().current)), 201


@bp.get("/audit/checkpoints")
@require(Scope.AUDIT_READ)
def list_checkpoints() -> ResponseReturnValue:
    """The latest signed checkpoints.

    ---
    tags: [audit]
    operationId: listCheckpoints
    description: The latest checkpoints, newest first, at most 100.
    responses:
      '200':
        description: Checkpoints, newest first.
        content:
          application/json:
            schema:
              type: object
              required: [checkpoints]
              properties:
                checkpoints:
                  type: array
                  maxItems: 100
                  items: CheckpointSchema
    """
    return {"checkpoints": [dump(_checkpoint, c) for c in checkpoints.listing(session())]}
