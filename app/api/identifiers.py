"""A subject's identifiers: list, link, unlink, and merging two subjects into one."""

from __future__ import annotations

from typing import Any

from flask import Blueprint
from flask.typing import ResponseReturnValue

from app.api import api_act, dump, load_body
from app.api.schemas import (
    IdentifierLinkSchema,
    IdentifierSchema,
    IdentifiersSchema,
    MergeResultSchema,
    MergeSchema,
)
from app.auth import require
from app.domain.vocabulary import Method, Scope
from app.http import rules, session
from app.services.consent.subjects import identifier_data
from app.services.identity import identifiers, merges

bp = Blueprint("identifiers", __name__)

_link = IdentifierLinkSchema()
_one = IdentifierSchema()
_many = IdentifiersSchema()
_merge = MergeSchema()
_merged = MergeResultSchema()


@bp.get("/subjects/<uuid:subject_id>/identifiers")
@require(Scope.SUBJECTS_MANAGE)
def listing(subject_id: Any) -> ResponseReturnValue:
    rows = identifiers.listing(session(), str(subject_id))
    return dump(_many, {"identifiers": [identifier_data(r) for r in rows]})


@bp.post("/subjects/<uuid:subject_id>/identifiers")
@require(Scope.SUBJECTS_MANAGE)
def link(subject_id: Any) -> ResponseReturnValue:
    body = load_body(_link)
    row, is_new = identifiers.link(
        session(),
        rules(),
        str(subject_id),
        body["kind"],
        body["value"],
        api_act(body, Method.ADMIN),
        region=body.get("country"),
    )
    return dump(_one, identifier_data(row)), 201 if is_new else 200


@bp.delete("/subjects/<uuid:subject_id>/identifiers/<identifier_id>")
@require(Scope.SUBJECTS_MANAGE)
def unlink(subject_id: Any, identifier_id: str) -> ResponseReturnValue:
    identifiers.unlink(session(), str(subject_id), identifier_id, api_act({}, Method.ADMIN))
    return "", 204


@bp.post("/subjects/<uuid:subject_id>/merge")
@require(Scope.SUBJECTS_MANAGE)
def merge(subject_id: Any) -> ResponseReturnValue:
    body = load_body(_merge)
    merged = merges.merge(
        session(), rules(), str(subject_id), str(body["subject_id"]), api_act(body, Method.ADMIN)
    )
    return dump(
        _merged,
        {
            "subject_id": merged.subject_id,
            "merged_subject_id": merged.merged_id,
            "identifiers_moved": merged.identifiers_moved,
            "choices_changed": merged.changed,
        },
    )
