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
    args = load_args(_export_query)
    filters = _filters(args)
    if args["format"] == "csv":
        render, mimetype, suffix = trail.to_csv, "text/csv", "csv"
    else:
        render, mimetype, suffix = trail.to_ndjson, "application/x-ndjson", "ndjson"
    return Response(
        streamed(lambda own: render(trail.iter_events(own, filters))),
        mimetype=mimetype,
        headers={"Content-Disposition": f'attachment; filename="audit-trail.{suffix}"'},
    )


@bp.get("/audit/verify")
@require(Scope.AUDIT_READ)
def verify() -> ResponseReturnValue:
    return dump(_verification, trail.verify(session()))


_package_query = PackageQuerySchema()
_checkpoint = CheckpointSchema()


@bp.get("/audit/package")
@require(Scope.AUDIT_READ)
def dpo_package() -> ResponseReturnValue:
    args = load_args(_package_query)
    filters = _filters(args)
    keys, catalog = signing_keys(), rules().catalog.as_dict()
    return Response(
        streamed(lambda own: package.stream(own, filters, keys, catalog)),
        mimetype="application/x-ndjson",
        headers={"Content-Disposition": 'attachment; filename="audit-package.ndjson"'},
    )


@bp.post("/audit/checkpoints")
@require(Scope.AUDIT_READ)
def create_checkpoint() -> ResponseReturnValue:
    load_body(_no_fields, optional=True)  # nothing to send; a body that is sent must be valid
    return dump(_checkpoint, checkpoints.create(session(), signing_keys().current)), 201


@bp.get("/audit/checkpoints")
@require(Scope.AUDIT_READ)
def list_checkpoints() -> ResponseReturnValue:
    return {"checkpoints": [dump(_checkpoint, c) for c in checkpoints.listing(session())]}
