"""The audit trail for DPOs: pages, streamed exports, and verification."""

from __future__ import annotations

from flask import Blueprint, Response
from flask.typing import ResponseReturnValue

from app.api import dump, load_args, streamed
from app.api.schemas import (
    EventsPageSchema,
    EventsQuerySchema,
    ExportQuerySchema,
    VerificationSchema,
)
from app.auth import require
from app.domain.vocabulary import Scope
from app.http import session
from app.services import audit

bp = Blueprint("audit", __name__)

_events_query = EventsQuerySchema()
_export_query = ExportQuerySchema()
_page = EventsPageSchema()
_verification = VerificationSchema()


@bp.get("/audit/events")
@require(Scope.AUDIT_READ)
def events() -> ResponseReturnValue:
    args = load_args(_events_query)
    subject_id = str(args["subject_id"]) if "subject_id" in args else None
    found, next_after = audit.page(
        session(), audit.EventFilter(after=args["after"], subject_id=subject_id), args["limit"]
    )
    return dump(_page, {"events": found, "next_after": next_after})


@bp.get("/audit/export")
@require(Scope.AUDIT_READ)
def export() -> ResponseReturnValue:
    args = load_args(_export_query)
    filters = audit.EventFilter(
        subject_id=str(args["subject_id"]) if "subject_id" in args else None,
        since=args.get("since"),
        until=args.get("until"),
        channel=args.get("channel"),
        category=args.get("category"),
    )
    if args["format"] == "csv":
        render, mimetype, suffix = audit.to_csv, "text/csv", "csv"
    else:
        render, mimetype, suffix = audit.to_ndjson, "application/x-ndjson", "ndjson"
    return Response(
        streamed(lambda own: render(audit.iter_events(own, filters))),
        mimetype=mimetype,
        headers={"Content-Disposition": f'attachment; filename="audit-trail.{suffix}"'},
    )


@bp.get("/audit/verify")
@require(Scope.AUDIT_READ)
def verify() -> ResponseReturnValue:
    return dump(_verification, audit.verify(session()))
