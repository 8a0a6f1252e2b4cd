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
    """The identifiers a subject holds.

    ---
    tags: [subjects]
    operationId: listIdentifiers
    description: |
      Every email, phone, external id and catalog-declared identifier of the person, with
      where it came from, when it was added and when (if ever) that contact point itself was
      confirmed. A merged-away subject id answers with the surviving subject's identifiers.
    responses:
      '200':
        description: The identifiers.
        content:
          application/json:
            schema: IdentifiersSchema
      '404': {$ref: '#/components/responses/NotFound'}
      '410': {$ref: '#/components/responses/Gone'}
    """
    rows = identifiers.listing(session(), str(subject_id))
    return dump(_many, {"identifiers": [identifier_data(r) for r in rows]})


@bp.post("/subjects/<uuid:subject_id>/identifiers")
@require(Scope.SUBJECTS_MANAGE)
def link(subject_id: Any) -> ResponseReturnValue:
    """Link one more identifier to a subject.

    ---
    tags: [subjects]
    operationId: linkIdentifier
    description: |
      Normalised before it is compared (emails as email-validator does, phones in E.164;
      `country` says where a national number is from). `201` when linked, `200` when the
      subject already held it, `409` when another subject holds it. Recorded as an
      `identifier_linked` event naming the identifier's id and kind, never its value.
    requestBody:
      required: true
      content:
        application/json:
          schema: IdentifierLinkSchema
          example: {kind: external_id, value: crm-4711, source: crm}
    responses:
      '201':
        description: Linked.
        content:
          application/json:
            schema: IdentifierSchema
      '200':
        description: The subject already held it.
        content:
          application/json:
            schema: IdentifierSchema
      '404': {$ref: '#/components/responses/NotFound'}
      '409': {$ref: '#/components/responses/Conflict'}
      '410': {$ref: '#/components/responses/Gone'}
    """
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
    """Unlink one identifier from a subject.

    ---
    tags: [subjects]
    operationId: unlinkIdentifier
    description: |
      The identifier's value goes; an `identifier_unlinked` event keeps its id and kind.
      Possible after a merge too. Unlinking is not erasure: no suppression is left.
    responses:
      '204':
        description: Unlinked.
      '404': {$ref: '#/components/responses/NotFound'}
      '410': {$ref: '#/components/responses/Gone'}
    """
    identifiers.unlink(session(), str(subject_id), identifier_id, api_act({}, Method.ADMIN))
    return "", 204


@bp.post("/subjects/<uuid:subject_id>/merge")
@require(Scope.SUBJECTS_MANAGE)
def merge(subject_id: Any) -> ResponseReturnValue:
    """Merge another subject into this one.

    ---
    tags: [subjects]
    operationId: mergeSubjects
    description: |
      Moves the other subject's identifiers and history (evidence, requests, mail) onto
      `{subject_id}`. Where the two disagree on a choice the least permissive one stands
      (withdrawn before pending before granted) until the person chooses again; an
      unsubscribe-all of either stays. The other id then answers every call, the check
      included, as the surviving subject. Recorded as `merge` events on both. Merging a
      subject into itself is a `409`.
    requestBody:
      required: true
      content:
        application/json:
          schema: MergeSchema
    responses:
      '200':
        description: Merged.
        content:
          application/json:
            schema: MergeResultSchema
      '404': {$ref: '#/components/responses/NotFound'}
      '409': {$ref: '#/components/responses/Conflict'}
      '410': {$ref: '#/components/responses/Gone'}
    """
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
