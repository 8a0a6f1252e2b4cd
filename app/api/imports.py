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
    """Import existing choices with their provenance.

    ---
    tags: [imports]
    operationId: startImport
    description: |
      The body is NDJSON (`application/x-ndjson`, one ImportRow object a line) or CSV
      (`text/csv`, a header row naming the same fields), streamed into the database in
      chunks (a file of a million rows never sits in memory; `IMPORT_MAX_BYTES` caps it),
      then applied by the worker (or the development server) one chunk per transaction; a
      restart resumes at the first chunk not applied.

      Rules: an import never overrides a later withdrawal, an unsubscribe-all or a
      suppression; a row older than what is stored changes nothing; the same file twice
      changes nothing the second time; a `purchased_list` row is recorded but is never
      consent; an email row without proof of confirmation (`method` other than
      `double_opt_in`) where double opt-in applies is stored as pending. A
      `notice_version` must be published first. Events keep both times: `occurred_at`
      (recorded) and `details.consented_at` (given). A body that is not UTF-8 or holds a
      NUL character is a `400`; a bad row is a per-line error in the report.
    parameters:
      - in: query
        schema: ImportQuerySchema
    requestBody:
      required: true
      content:
        application/x-ndjson:
          schema: {type: string, description: 'One ImportRow object a line.'}
        text/csv:
          schema: {type: string, description: 'A header row, then one ImportRow a line.'}
    responses:
      '202':
        description: Accepted; follow it at `GET /v1/imports/{import_id}`.
        content:
          application/json:
            schema: ImportStartedSchema
    """
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
    """An import's progress, counts and per-line errors.

    ---
    tags: [imports]
    operationId: getImport
    responses:
      '200':
        description: The import.
        content:
          application/json:
            schema: ImportReportSchema
      '404': {$ref: '#/components/responses/NotFound'}
    """
    return dump(_report, jobs.report(session(), str(import_id)).as_data())
