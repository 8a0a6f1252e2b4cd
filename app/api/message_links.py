"""Links for one message: the preference page, one-click unsubscribe, and the RFC 8058 headers."""

from __future__ import annotations

from typing import Any

from flask import Blueprint
from flask.typing import ResponseReturnValue

from app.api import dump, load_body
from app.api.schemas import MessageLinksRequestSchema, MessageLinksSchema
from app.auth import require
from app.domain.vocabulary import Scope
from app.http import rules, session, settings, tokens
from app.services.preference_center import message_links

bp = Blueprint("message_links", __name__)

_request = MessageLinksRequestSchema()
_links = MessageLinksSchema()


@bp.post("/subjects/<uuid:subject_id>/links")
@require(Scope.CONSENT_WRITE)
def make(subject_id: Any) -> ResponseReturnValue:
    """Signed links and RFC 8058 headers for one message to a subject.

    ---
    tags: [subjects]
    operationId: makeMessageLinks
    description: |
      `preference_url` opens the person's preference page without a password (signed,
      scoped to the subject, valid `PREFERENCE_LINK_TTL_DAYS`, 90 by default).
      `unsubscribe_url` is signed and scoped to the subject, the channel and, if given, the
      category and message id (valid `UNSUBSCRIBE_LINK_TTL_DAYS`, 90 by default). A `POST`
      to it with the form body `List-Unsubscribe=One-Click` withdraws at once and answers
      200 with no cookie, no login and no redirect; repeating it changes nothing; the
      withdrawal event records `message_id` in its details. Its `GET` shows a page with a
      button and changes nothing. Without `category` the whole channel is withdrawn.
      Both URLs start with `BASE_URL`. Nothing is stored: the links are stateless.
      Transactional categories carry no unsubscribe link (422). The body is optional.
      A suppressed subject gets no links: one that came back by an erased address and has
      not confirmed it since must not be sent marketing, so the answer is `409` with the
      problem type `tag:consent-center,2026:problems/subject-suppressed` (an erased subject
      is `410`).
    requestBody:
      required: false
      content:
        application/json:
          schema: MessageLinksRequestSchema
          example:
            channel: email
            category: newsletter
            message_id: <c-2026-11@mail.example.org>
    responses:
      '200':
        description: The links and the two headers to put on the message.
        content:
          application/json:
            schema: MessageLinksSchema
            example:
              preference_url: https://consent.example.org/p/eyJzIjoi...
              unsubscribe_url: https://consent.example.org/u/eyJzIjoi...
              headers:
                List-Unsubscribe: <https://consent.example.org/u/eyJzIjoi...>
                List-Unsubscribe-Post: List-Unsubscribe=One-Click
      '404': {$ref: '#/components/responses/NotFound'}
      '409':
        description: |
          The subject is suppressed (an address of theirs was erased and not confirmed
          again since): no message may be sent to them, so no links are made.
        content:
          application/problem+json:
            schema:
              $ref: '#/components/schemas/Problem'
            example:
              type: tag:consent-center,2026:problems/subject-suppressed
              title: Conflict
              status: 409
              detail: 'Subject 0b6b8a5e-...: suppressed; an address of theirs was erased.'
      '410': {$ref: '#/components/responses/Gone'}
    """
    body = load_body(_request, optional=True)
    made = message_links.make_links(
        session(),
        rules(),
        tokens(),
        settings().base_url,
        str(subject_id),
        channel=body["channel"],
        category=body["category"],
        message_id=body["message_id"],
    )
    return dump(
        _links,
        {
            "preference_url": made.preference_url,
            "unsubscribe_url": made.unsubscribe_url,
            "headers": made.headers,
        },
    )
