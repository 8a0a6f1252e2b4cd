"""The consent check: single (GET) and batch (POST)."""

from __future__ import annotations

from flask import Blueprint
from flask.typing import ResponseReturnValue

from app.api import dump, load_args, load_body
from app.api.schemas import BatchCheckSchema, CheckQuerySchema, CheckResultSchema
from app.auth import require
from app.domain.identifiers import identifier
from app.domain.vocabulary import IdentifierKind, Scope
from app.http import read_session, rules
from app.services.consent import checks

bp = Blueprint("consent", __name__)

_query = CheckQuerySchema()
_result = CheckResultSchema()
_batch = BatchCheckSchema()


def _question(args: dict[str, str]) -> checks.Question:
    return checks.Question(args.get("channel"), args.get("category"), args.get("purpose"))


@bp.get("/consent/check")
@require(Scope.CONSENT_READ)
def check() -> ResponseReturnValue:
    args = load_args(_query)
    ident = None
    for kind in (IdentifierKind.EMAIL, IdentifierKind.PHONE, IdentifierKind.EXTERNAL_ID):
        if kind in args:
            ident = identifier(kind, args[kind], region=args.get("country"))
    subject_id = str(args["subject_id"]) if "subject_id" in args else None
    with read_session() as reader:
        answer = checks.check(reader, rules(), _question(args), ident=ident, subject_id=subject_id)
    body = {
        "allowed": answer.decision.allowed,
        "reason": answer.decision.reason,
        "subject_id": answer.subject_id,
        "event_id": answer.decision.event_id,
    }
    if answer.is_for_person:
        body["contact"] = answer.contact
    return dump(_result, body)


@bp.post("/consent/check")
@require(Scope.CONSENT_READ)
def check_batch() -> ResponseReturnValue:
    body = load_body(_batch)
    with read_session() as reader:
        results = checks.check_emails(reader, rules(), _question(body), body["emails"])
    allowed = sum(1 for r in results if r.decision.allowed)
    return {
        "results": [
            {"email": r.email, "allowed": r.decision.allowed, "reason": r.decision.reason.value}
            for r in results
        ],
        "allowed": allowed,
        "denied": len(results) - allowed,
    }
