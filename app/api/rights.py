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
    args = load_args(_query)
    found = rights.listing(session(), overdue=args["overdue"], limit=args["limit"])
    return {"rights_requests": [dump(_out, r) for r in found]}


@bp.post("/rights-requests")
@require(Scope.SUBJECTS_MANAGE)
def record_request() -> ResponseReturnValue:
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
    load_body(_no_fields, optional=True)  # nothing to send; a body that is sent must be valid
    return dump(_out, rights.answer(session(), str(request_id)))


@bp.get("/subjects/<uuid:subject_id>/evidence/double-opt-in")
@require(Scope.AUDIT_READ)
def double_opt_in(subject_id: Any) -> ResponseReturnValue:
    return dump(_evidence, opt_in_evidence.record(session(), str(subject_id)))
