"""Subjects: lookup, preferences, unsubscribe-all, export and erasure."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Blueprint
from flask.typing import ResponseReturnValue

from app.api import api_act, dump, load_args, load_body
from app.api.schemas import (
    ErasureSchema,
    PreferencesPatchSchema,
    SubjectQuerySchema,
    SubjectSchema,
    UnsubscribeAllSchema,
)
from app.auth import require
from app.domain.chain import format_time
from app.domain.consent import PreferencesView, Topic
from app.domain.vocabulary import IdentifierKind, Method, Scope, Status
from app.http import mail_files, rules, session
from app.services.consent import preferences, subjects

bp = Blueprint("subjects", __name__)

_query = SubjectQuerySchema()
_subject = SubjectSchema()
_patch = PreferencesPatchSchema()
_unsubscribe = UnsubscribeAllSchema()
_erasure = ErasureSchema()


def preferences_body(subject_id: str, view: PreferencesView) -> dict[str, Any]:
    """`PreferencesSchema`'s answer built straight from the view: what its dump gave, byte for
    byte (tests/api/test_preferences_answer.py), without a nested schema walk on every write."""
    data = view.as_data()
    return {
        "subject_id": subject_id,
        "unsubscribed_all": _flag(data["unsubscribed_all"]),
        "channels": [{"channel": _text(c["channel"]), **_standing(c)} for c in data["channels"]],
        "categories": [
            {"channel": _text(p["channel"]), "category": _text(p["category"]), **_decided(p)}
            for p in data["categories"]
        ],
        "purposes": [{"purpose": _text(p["purpose"]), **_decided(p)} for p in data["purposes"]],
    }


def _standing(row: dict[str, Any]) -> dict[str, Any]:
    return {"status": _text(row["status"]), "updated_at": _time(row["updated_at"])}


def _decided(row: dict[str, Any]) -> dict[str, Any]:
    return _standing(row) | {"allowed": _flag(row["allowed"]), "reason": _text(row["reason"])}


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _flag(value: Any) -> bool | None:
    return None if value is None else bool(value)


def _time(value: datetime | None) -> str | None:
    return None if value is None else format_time(value)


@bp.get("/subjects")
@require(Scope.CONSENT_READ)
def find() -> ResponseReturnValue:
    """Find a subject by identifier.

    ---
    tags: [subjects]
    operationId: findSubject
    description: Give exactly one of `email`, `phone` or `external_id`; `404` if nobody holds it.
    parameters:
    - in: query
      schema: SubjectQuerySchema
    responses:
      '200':
        description: The subject.
        content:
          application/json:
            schema: SubjectSchema
      '404': {$ref: '#/components/responses/NotFound'}
      '410': {$ref: '#/components/responses/Gone'}
    """
    args = load_args(_query)
    kind = next(k for k in IdentifierKind if k in args)
    subject = subjects.find(session(), rules(), kind, args[kind], region=args.get("country"))
    return dump(_subject, subject)


@bp.get("/subjects/<uuid:subject_id>/preferences")
@require(Scope.CONSENT_READ)
def get_preferences(subject_id: Any) -> ResponseReturnValue:
    """A subject's current preferences.

    ---
    tags: [subjects]
    operationId: getPreferences
    description: |
      The standing of every channel, every marketing (channel, category) pair and every
      purpose of the catalog, each with what the consent check would answer for it.
    responses:
      '200':
        description: The preferences.
        content:
          application/json:
            schema: PreferencesSchema
      '404': {$ref: '#/components/responses/NotFound'}
      '410': {$ref: '#/components/responses/Gone'}
    """
    view = preferences.view(session(), rules(), str(subject_id))
    return preferences_body(str(subject_id), view)


@bp.patch("/subjects/<uuid:subject_id>/preferences")
@require(Scope.CONSENT_WRITE)
def change_preferences(subject_id: Any) -> ResponseReturnValue:
    """Grant or withdraw.

    ---
    tags: [subjects]
    operationId: changePreferences
    description: |
      Applies every change or none. A change names a `channel` (and optionally a
      `category`; left out = the whole channel) or a `purpose`. Granting a category on a
      channel that was never granted, or was withdrawn, grants the channel too. A change to
      what already stands writes nothing. Transactional categories have no consent to
      change (`422`).

      Double opt-in cannot be skipped: a grant on a channel awaiting its confirmation, or
      on one double opt-in governs (email, unless the subject's country allows single opt-in)
      that was never granted, is recorded as `pending` (action `request`), and the answer
      shows that channel `pending` and its categories `pending_confirmation`. Only that
      address's confirmation link grants it. A `notice_version` that was never published
      is a `422` (`errors.notice_version`), even when nothing would change.
    requestBody:
      required: true
      content:
        application/json:
          schema: PreferencesPatchSchema
          example:
            changes:
            - channel: email
              category: offers
              status: withdrawn
            - purpose: personalization
              status: granted
            source: preference-center
            ip: 198.51.100.7
            user_agent: Mozilla/5.0
    responses:
      '200':
        description: The preferences after the change.
        content:
          application/json:
            schema: PreferencesSchema
      '404': {$ref: '#/components/responses/NotFound'}
      '410': {$ref: '#/components/responses/Gone'}
    """
    body = load_body(_patch)
    changes = [
        preferences.Change(
            Topic(c.get("channel", ""), c.get("category", ""), c.get("purpose", "")),
            Status(c["status"]),
        )
        for c in body["changes"]
    ]
    view = preferences.change(
        session(), rules(), str(subject_id), changes, api_act(body, Method(body["method"]))
    )
    return preferences_body(str(subject_id), view)


@bp.post("/subjects/<uuid:subject_id>/unsubscribe-all")
@require(Scope.CONSENT_WRITE)
def unsubscribe_all(subject_id: Any) -> ResponseReturnValue:
    """Withdraw all marketing.

    ---
    tags: [subjects]
    operationId: unsubscribeAll
    description: |
      Records "unsubscribe from all": every marketing check answers `unsubscribed_all` until
      a later grant of a pair lifts it for that pair. Purposes are not affected. Idempotent:
      nothing is written if nothing was granted since the last one. The body is optional.
    requestBody:
      required: false
      content:
        application/json:
          schema: UnsubscribeAllSchema
          example:
            source: list-unsubscribe
            message_id: <20240501.1234@mail.example.org>
            campaign_id: spring-sale
    responses:
      '200':
        description: The preferences afterwards.
        content:
          application/json:
            schema: PreferencesSchema
      '404': {$ref: '#/components/responses/NotFound'}
      '410': {$ref: '#/components/responses/Gone'}
    """
    body = load_body(_unsubscribe, optional=True)
    details = {k: body[k] for k in ("message_id", "campaign_id") if body.get(k)}
    view = preferences.unsubscribe_all(
        session(), rules(), str(subject_id), api_act(body), details=details or None
    )
    return preferences_body(str(subject_id), view)


@bp.get("/subjects/<uuid:subject_id>/export")
@require(Scope.SUBJECTS_MANAGE)
def export(subject_id: Any) -> ResponseReturnValue:
    """Everything held on a subject (GDPR Art. 15 and 20).

    ---
    tags: [subjects]
    operationId: exportSubject
    description: |
      Identifiers, current preferences, every audit event about the subject with its
      evidence, the notice texts those events refer to, and the subject's rights requests.
    responses:
      '200':
        description: The export.
        content:
          application/json:
            schema: {$ref: '#/components/schemas/SubjectExport'}
      '404': {$ref: '#/components/responses/NotFound'}
      '410': {$ref: '#/components/responses/Gone'}
    """
    data = subjects.export(session(), rules(), str(subject_id))
    data["preferences"] = preferences_body(str(subject_id), data["preferences"])
    return data


@bp.delete("/subjects/<uuid:subject_id>")
@require(Scope.SUBJECTS_MANAGE)
def erase(subject_id: Any) -> ResponseReturnValue:
    """Erase a subject (right to erasure).

    ---
    tags: [subjects]
    operationId: eraseSubject
    description: |
      Deletes the subject's identifiers and personal evidence (IP, user agent, mail, access
      logs, pending requests). Kept: a keyed hash of each identifier as a suppression, so
      later checks answer `suppressed` and a re-import grants nothing until a fresh,
      confirmed opt-in; and the pseudonymous audit events, so the chain stays verifiable.
      An erased subject is `410` from then on.
    responses:
      '200':
        description: Erased.
        content:
          application/json:
            schema: ErasureSchema
      '404': {$ref: '#/components/responses/NotFound'}
      '410': {$ref: '#/components/responses/Gone'}
    """
    erasure = subjects.erase(
        session(), rules(), str(subject_id), api_act({}, Method.ADMIN), mail_files=mail_files()
    )
    return dump(
        _erasure,
        {
            "subject_id": erasure.subject_id,
            "erased_at": erasure.erased_at,
            "identifiers_suppressed": erasure.identifiers_suppressed,
            "event_id": erasure.event_id,
            "kept": {
                "suppression": "A keyed hash (HMAC) of each identifier, so the person is never "
                "contacted again and a re-import grants nothing.",
                "proof": "The pseudonymous consent events, without email, phone, IP or user "
                "agent, as proof of past consent for the proof-retention period.",
            },
        },
    )
