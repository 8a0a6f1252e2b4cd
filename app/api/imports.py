"""Importing existing lists: upload (streamed to the database in chunks) and progress."""

from __future__ import annotations

import io
from collections.abc import Iterator

from flask import Blueprint, request
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import BadRequest, UnsupportedMediaType

from app.api import dump, load_args
from app.api.schemas import ImportQuerySchema, ImportReportSchema, ImportStartedSchema
from app.auth import current_client_id, require
from app.domain.vocabulary import Scope
from app.http import session, settings
from app.services.imports import jobs

bp = Blueprint("imports", __name__)

_query = ImportQuerySchema()
_started = ImportStartedSchema()
_report = ImportReportSchema()
FORMATS = {
    "application/x-ndjson": jobs.Format.NDJSON,
    "application/jsonl": jobs.Format.NDJSON,
    "text/csv": jobs.Format.CSV,
}


def _lines() -> Iterator[str]:
    """The body's lines as they arrive: a file of a million rows never sits in memory."""
    text = io.TextIOWrapper(request.stream, encoding="utf-8-sig", newline="")
    number = 0
    try:
        for number, line in enumerate(text, 1):
            if "\x00" in line:
                raise BadRequest(f"Line {number} holds a NUL character, which no field accepts.")
            yield line
    except UnicodeDecodeError:
        raise BadRequest(f"Line {number + 1} is not UTF-8.") from None


@bp.post("/imports")
@require(Scope.CONSENT_WRITE)
def start() -> ResponseReturnValue:
    args = load_args(_query)
    fmt = FORMATS.get(request.mimetype)
    if fmt is None:
        raise UnsupportedMediaType("Send the rows as application/x-ndjson or text/csv.")
    request.max_content_length = settings().import_max_bytes
    job = jobs.create(
        session(),
        _lines(),
        fmt,
        actor=f"client:{current_client_id()}",
        is_dry_run=args["dry_run"],
    )
    return dump(_started, {"import_id": job.id}), 202


@bp.get("/imports/<uuid:import_id>")
@require(Scope.CONSENT_WRITE)
def status(import_id: object) -> ResponseReturnValue:
    return dump(_report, jobs.report(session(), str(import_id)).as_data())
