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
    """Channels, categories and purposes.

    ---
    tags: [meta]
    operationId: getCatalog
    description: |
      The deployment's catalog, with texts in every locale: what a person can choose about,
      the legal basis, recipients and retention of each (the Art. 30 record).
    responses:
      '200':
        description: The catalog.
        content:
          application/json:
            schema: {$ref: '#/components/schemas/Catalog'}
    """
    return rules().catalog.as_dict()


@bp.get("/notices")
@require(Scope.CONSENT_READ)
def list_notices() -> ResponseReturnValue:
    """Published notice versions.

    ---
    tags: [meta]
    operationId: listNotices
    responses:
      '200':
        description: Every published version, by key, then locale, then publication time.
        content:
          application/json:
            schema:
              type: object
              required: [notices]
              properties:
                notices:
                  type: array
                  items: NoticeOutSchema
    """
    return {"notices": [dump(_notice_out, n) for n in notices.listing(session())]}


@bp.post("/notices")
@require(Scope.NOTICES_PUBLISH)
def publish_notice() -> ResponseReturnValue:
    """Publish a notice version.

    ---
    tags: [meta]
    operationId: publishNotice
    description: |
      Publishes the exact wording of a notice (the text a person sees when consenting), so
      events can name it by `notice_version`. A version is immutable: publishing the same
      key, version and locale again with the same title and text is a no-op answered
      like the first time; with other wording it is a `409`. The public pages show the
      newest version of `marketing-consent` in the person's locale, else the newest in
      English, so a version published in one locale never replaces another locale's text.
      Needs `notices:publish`, a scope of its own: `consent:write` cannot change wording.
    requestBody:
      required: true
      content:
        application/json:
          schema: NoticeSchema
          example:
            key: marketing-consent
            version: 2024-05
            locale: en
            title: Marketing messages
            text: We would like to send you news and offers. You can withdraw at any time.
    responses:
      '201':
        description: Published (or already published with this wording).
        content:
          application/json:
            schema: NoticeOutSchema
      '409': {$ref: '#/components/responses/Conflict'}
    """
    body = load_body(_notice_in)
    notice = notices.publish(session(), actor=f"client:{current_client_id()}", **body)
    return dump(_notice_out, notice), 201
