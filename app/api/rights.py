"""The DPO's records on /v1: the rights-request log and double opt-in evidence."""

from __future__ import annotations

from typing import Any

from flask import Blueprint
from flask.typing import ResponseReturnValue

from app.api import dump, load_args, load_body
from app.api.audit_schemas import (
    DoubleOptInEvidenceSchema,
    RightsQuerySchema,
    RightsRequestInSchema,
    RightsRequestSchema,
)
from app.api.schemas import StrictSchema
from app.auth import require
from app.domain.vocabulary import Scope
from app.http import session
from app.services.audit import opt_in_evidence
from app.services.privacy_center import rights

_no_fields = StrictSchema()
bp = Blueprint("rights", __name__)

_query = RightsQuerySchema()
_in = RightsRequestInSchema()
_out = RightsRequestSchema()
_evidence = DoubleOptInEvidenceSchema()


@bp.get("/rights-requests")
@require(Scope.AUDIT_READ)
def list_requests() -> ResponseReturnValue:
    """The rights-request log, or only the overdue requests.

    ---
    tags: [subjects]
    operationId: listRightsRequests
    description: |
      Access, download and erasure requests with their received, due (one month after
      receipt, GDPR Art. 12(3)) and answered dates, newest first. `overdue=true` lists only
      unanswered requests past their due date, the most overdue first.
      `GET /v1/subjects/{subject_id}/export` and `DELETE /v1/subjects/{subject_id}` log
      themselves here, answered at once.
    parameters:
    - in: query
      schema: RightsQuerySchema
    responses:
      '200':
        description: Requests.
        content:
          application/json:
            schema:
              type: object
              required: [rights_requests]
              properties:
                rights_requests:
                  type: array
                  items: RightsRequestSchema
    """
    args = load_args(_query)
    found = rights.listing(session(), overdue=args["overdue"], limit=args["limit"])
    return {"rights_requests": [dump(_out, r) for r in found]}


@bp.post("/rights-requests")
@require(Scope.SUBJECTS_MANAGE)
def record_request() -> ResponseReturnValue:
    """Log a rights request that came in another way (mail, letter, phone).

    ---
    tags: [subjects]
    operationId: recordRightsRequest
    description: |
      Logs an unanswered request; its due date is one month after `received_at` (now, if
      left out). The subject is not looked up: a request may name a subject id the service
      does not (or no longer) hold.
    requestBody:
      required: true
      content:
        application/json:
          schema: RightsRequestInSchema
          example:
            subject_id: 7d6f3c2e-5b1a-4c8e-9f0a-2b3c4d5e6f70
            kind: access
            received_at: '2024-05-02T09:30:00Z'
            channel: letter
            note: Signed letter, scanned to the DPO mailbox.
    responses:
      '201':
        description: The logged request.
        content:
          application/json:
            schema: RightsRequestSchema
    """
    body = load_body(_in)
    row = rights.record(
        session(),
        str(body["subject_id"]),
        body["kind"],
        received_at=body.get("received_at"),
        channel=body.get("channel"),
        note=body.get("note"),
    )
    return dump(_out, row), 201


@bp.post("/rights-requests/<uuid:request_id>/answer")
@require(Scope.SUBJECTS_MANAGE)
def answer_request(request_id: Any) -> ResponseReturnValue:
    """Mark a rights request as answered now.

    ---
    tags: [subjects]
    operationId: answerRightsRequest
    description: No body. A request is answered once; answering it again is a `409`.
    responses:
      '200':
        description: The answered request.
        content:
          application/json:
            schema: RightsRequestSchema
      '404': {$ref: '#/components/responses/NotFound'}
      '409': {$ref: '#/components/responses/Conflict'}
    """
    load_body(_no_fields, optional=True)  # nothing to send; a body that is sent must be valid
    return dump(_out, rights.answer(session(), str(request_id)))


@bp.get("/subjects/<uuid:subject_id>/evidence/double-opt-in")
@require(Scope.AUDIT_READ)
def double_opt_in(subject_id: Any) -> ResponseReturnValue:
    """The double opt-in record of one subject.

    ---
    tags: [audit]
    operationId: getDoubleOptInEvidence
    description: |
      For every double opt-in request of the subject, oldest first: the request (time, IP,
      user agent, source, capture point, the audit events it wrote, and the notice text
      shown with its SHA-256), the confirmation mail (message id, template, template version
      and SHA-256, delivery status, send time) and the confirmation (time, IP, user agent,
      the events it wrote; null while unconfirmed). An erased subject's record is still
      answered, without the IP addresses and user agents erasure deleted. DPOs can print
      the same record at `/dpo/subjects/{subject_id}/double-opt-in`.
    responses:
      '200':
        description: The record.
        content:
          application/json:
            schema: DoubleOptInEvidenceSchema
      '404':
        description: No such subject, or no double opt-in request on record for them.
        content:
          application/problem+json:
            schema: {$ref: '#/components/schemas/Problem'}
    """
    return dump(_evidence, opt_in_evidence.record(session(), str(subject_id)))
