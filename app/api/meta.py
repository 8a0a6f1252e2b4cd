"""What integrators read about the service itself: the catalog and the published notices."""

from __future__ import annotations

from flask import Blueprint
from flask.typing import ResponseReturnValue

from app.api import dump, load_body
from app.api.schemas import NoticeOutSchema, NoticeSchema
from app.auth import current_client_id, require
from app.domain.vocabulary import Scope
from app.http import rules, session
from app.services.consent import notices

bp = Blueprint("meta", __name__)

_notice_in = NoticeSchema()
_notice_out = NoticeOutSchema()


@bp.get("/catalog")
@require(Scope.CONSENT_READ)
def catalog() -> ResponseReturnValue:
    return rules().catalog.as_dict()


@bp.get("/notices")
@require(Scope.CONSENT_READ)
def list_notices() -> ResponseReturnValue:
    return {"notices": [dump(_notice_out, n) for n in notices.listing(session())]}


@bp.post("/notices")
@require(Scope.NOTICES_PUBLISH)
def publish_notice() -> ResponseReturnValue:
    body = load_body(_notice_in)
    notice = notices.publish(session(), actor=f"client:{current_client_id()}", **body)
    return dump(_notice_out, notice), 201
