"""Subjects: lookup, preferences, unsubscribe-all, export and erasure."""

from __future__ import annotations

from typing import Any

from flask import Blueprint
from flask.typing import ResponseReturnValue

from app.api import api_act, dump, load_args, load_body
from app.api.schemas import (
    ErasureSchema,
    PreferencesPatchSchema,
    PreferencesSchema,
    SubjectQuerySchema,
    SubjectSchema,
    UnsubscribeAllSchema,
)
from app.auth import require
from app.domain.consent import PreferencesView, Topic
from app.domain.vocabulary import IdentifierKind, Method, Scope, Status
from app.http import mail_files, rules, session
from app.services.consent import preferences, subjects

bp = Blueprint("subjects", __name__)

_query = SubjectQuerySchema()
_subject = SubjectSchema()
_patch = PreferencesPatchSchema()
_unsubscribe = UnsubscribeAllSchema()
_preferences = PreferencesSchema()
_erasure = ErasureSchema()


def preferences_body(subject_id: str, view: PreferencesView) -> dict[str, Any]:
    return dump(_preferences, {"subject_id": subject_id} | view.as_data())


@bp.get("/subjects")
@require(Scope.CONSENT_READ)
def find() -> ResponseReturnValue:
    args = load_args(_query)
    kind = next(k for k in IdentifierKind if k in args)
    subject = subjects.find(session(), rules(), kind, args[kind], region=args.get("country"))
    return dump(_subject, subject)


@bp.get("/subjects/<uuid:subject_id>/preferences")
@require(Scope.CONSENT_READ)
def get_preferences(subject_id: Any) -> ResponseReturnValue:
    view = preferences.view(session(), rules(), str(subject_id))
    return preferences_body(str(subject_id), view)


@bp.patch("/subjects/<uuid:subject_id>/preferences")
@require(Scope.CONSENT_WRITE)
def change_preferences(subject_id: Any) -> ResponseReturnValue:
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
    body = load_body(_unsubscribe, optional=True)
    details = {k: body[k] for k in ("message_id", "campaign_id") if body.get(k)}
    view = preferences.unsubscribe_all(
        session(), rules(), str(subject_id), api_act(body), details=details or None
    )
    return preferences_body(str(subject_id), view)


@bp.get("/subjects/<uuid:subject_id>/export")
@require(Scope.SUBJECTS_MANAGE)
def export(subject_id: Any) -> ResponseReturnValue:
    data = subjects.export(session(), rules(), str(subject_id))
    data["preferences"] = preferences_body(str(subject_id), data["preferences"])
    return data


@bp.delete("/subjects/<uuid:subject_id>")
@require(Scope.SUBJECTS_MANAGE)
def erase(subject_id: Any) -> ResponseReturnValue:
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
