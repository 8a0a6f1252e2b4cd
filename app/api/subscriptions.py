"""Opting in through the API: records the request and queues the double opt-in mail with it."""

from __future__ import annotations

from flask import Blueprint
from flask.typing import ResponseReturnValue

from app.api import api_act, dump, load_body
from app.api.schemas import SubscriptionResultSchema, SubscriptionSchema
from app.auth import require
from app.domain.identifiers import identifier
from app.domain.identity import CONTACT_KIND
from app.domain.vocabulary import IdentifierKind, Scope
from app.http import mailer, rules, session
from app.services.optin import subscriptions

bp = Blueprint("subscriptions", __name__)

_body = SubscriptionSchema()
_result = SubscriptionResultSchema()


@bp.post("/subscriptions")
@require(Scope.CONSENT_WRITE)
def subscribe() -> ResponseReturnValue:
    """Opt a person in.

    ---
    tags: [subscriptions]
    operationId: subscribe
    description: |
      Records an opt-in request for one channel and one or more marketing categories, with
      one audit event per (channel, category). `email` is required for every channel but
      `sms` and `phone`, which need `phone`.

      Double opt-in applies to email unless the deployment allows single opt-in for the
      `country` (`SINGLE_OPT_IN_COUNTRIES`), and always to an identifier that was erased:
      the answer is then `pending`, one `pending` event is recorded per (channel, category),
      and checks say `pending_confirmation` until it is confirmed. Otherwise the answer is
      `granted`. Asking again for what is already granted writes nothing and answers
      `granted`.

      **The confirmation mail.** Where double opt-in applies to an email address, the
      service writes, in the same transaction as the request, a confirmation mail to its
      outbox, in the request's `locale` (`en`, `es`, `it`, `de`; others fall back to `en`).
      It holds a link `BASE_URL/confirm/<token>`: a signed token bound to the request, valid
      for `CONFIRM_LINK_TTL_HOURS` (72 by default); only its SHA-256 is stored, and a newer
      link for the same request replaces it. The worker (`consent-center worker`) delivers
      the outbox over SMTP with retries and back-off, or to `.eml` files under
      `instance/outbox/` when `SMTP_HOST` is unset. `GET /confirm/<token>` (an HTML page)
      changes nothing, since mail scanners follow links; the page's `POST` to the same URL
      confirms.

      **At most one confirmation mail per address per 24 hours**, however often this is
      called: a repeated request is still recorded and still answers `202` `pending`, but
      no further mail is queued. The answer does not say whether a mail was sent.

      `source`, `ip`, `user_agent`, `locale` and `notice_version` are the evidence of the
      person's act (where, from which browser, in which language, under which notice text);
      pass on what the person's own request carried. When `notice_version` names a
      published notice, each event records that text's SHA-256.
    requestBody:
      required: true
      content:
        application/json:
          schema: SubscriptionSchema
          example:
            email: ada@example.org
            categories: [newsletter, offers]
            channel: email
            locale: en
            country: DE
            source: checkout
            notice_version: 2024-05
            ip: 198.51.100.7
            user_agent: Mozilla/5.0
    responses:
      '202':
        description: |
          Recorded; `pending` until the confirmation link's `POST` where double opt-in
          applies, `granted` under single opt-in.
        content:
          application/json:
            schema: SubscriptionResultSchema
            example:
              subject_id: 6f1c1c1e-4a53-4c1b-9a51-0b0f8e1f4b7a
              status: pending
    """
    body = load_body(_body)
    region = body.get("country")
    idents = {
        kind: identifier(kind, body[kind], region=region)
        for kind in IdentifierKind
        if body.get(kind)
    }
    contact = idents.pop(CONTACT_KIND.get(body["channel"], IdentifierKind.EMAIL))
    requested = subscriptions.subscribe(
        session(),
        rules(),
        mailer(),
        subscriptions.OptIn(
            contact, body["channel"], body["categories"], country=region, also=list(idents.values())
        ),
        api_act(body),
    )
    return dump(_result, {"subject_id": requested.subject_id, "status": requested.status}), 202
