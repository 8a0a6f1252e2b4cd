"""The consent check: single (GET) and batch (POST)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint
from flask.typing import ResponseReturnValue

from app.api import load_args, load_body
from app.api.schemas import BatchCheckSchema, CheckQuerySchema
from app.auth import require
from app.domain.identifiers import Identifier, identifier
from app.domain.vocabulary import IdentifierKind, Scope
from app.http import json_response, read_session, read_source, rules
from app.observability import count_decisions, count_tallied
from app.services.consent import checks

bp = Blueprint("consent", __name__)

_query = CheckQuerySchema()
_batch = BatchCheckSchema()


def question_of(args: dict[str, Any]) -> checks.Question:
    return checks.Question(args.get("channel"), args.get("category"), args.get("purpose"))


_question = question_of  # the batch view's name for it


@bp.get("/consent/check")
@require(Scope.CONSENT_READ)
def check() -> ResponseReturnValue:
    """May this subject be sent this category on this channel?

    ---
    tags: [consent]
    operationId: checkConsent
    description: |
      Name the subject by exactly one of `email`, `phone`, `external_id` or `subject_id`, and
      ask either about a message (`channel` and `category`) or about a processing purpose
      (`purpose`, e.g. `personalization` or `partner_sharing`). Anything else is a `422`, as
      is a channel, category or purpose the catalog lacks, or a category the channel does not
      carry. An unknown subject is not an error: the answer is `no_record`.

      The consent decision: may this subject be sent this category on this channel?

      Current standings are one row per topic (channel, channel and category, purpose, or
      "all marketing"); the rules below turn them into an answer. Precedence, first match
      wins; anything not granted is denied:

      1. `suppressed`: the identifier was erased and no fresh confirmed opt-in lifted that;
      2. `transactional`: the category is transactional: no opt-in governs it;
      3. `no_record`: the subject is unknown;
      4. `unsubscribed_all`: "unsubscribe from all" is newer than the grant for this pair
         (a later grant of the pair lifts it for that pair only);
      5. `withdrawn`: the channel or the pair was withdrawn;
      6. `pending_confirmation`: the channel or the pair awaits double opt-in;
      7. `no_record`: nothing was ever granted for the channel or the pair;
      8. `expired`: the pair's grant is older than the maximum consent age;
      9. `granted`: the channel opt-in is confirmed and the pair granted.

      Purposes (processing such as personalization) follow the same rules without 2 and 4:
      "unsubscribe from all" concerns messages, not processing.

      `allowed` is true only for `granted` and `transactional`. `event_id` names the audit
      event the answer relied on, where there is one (proof for the send decision).
    parameters:
    - in: query
      schema: CheckQuerySchema
    responses:
      '200':
        description: The decision.
        content:
          application/json:
            schema: CheckResultSchema
    """
    args = load_args(_query)
    ident, subject_id = subject_of(args)
    with read_session() as reader:
        question = question_of(args)
        answer = checks.check(reader, rules(), question, ident=ident, subject_id=subject_id)
    count_decisions(answer.decision.reason)
    return answer_body(answer, read_source())


def subject_of(args: dict[str, Any]) -> tuple[Identifier | None, str | None]:
    """Whom the loaded check arguments name: an identifier, or a subject id."""
    ident = None
    for kind in (IdentifierKind.EMAIL, IdentifierKind.PHONE, IdentifierKind.EXTERNAL_ID):
        if kind in args:
            ident = identifier(kind, args[kind], region=args.get("country"))
    subject_id = str(args["subject_id"]) if "subject_id" in args else None
    return ident, subject_id


def answer_body(answer: checks.Answer, source: dict[str, str]) -> dict[str, Any]:
    """The check's answer as its schema (`CheckResultSchema`) would dump it, built as plain
    values: it is every check's answer (the fast path in app/api/fastcheck.py too), and the
    schema's dump cost as much as the JSON. tests/api/test_check_answer.py holds the two equal."""
    body: dict[str, Any] = {
        "allowed": bool(answer.decision.allowed),
        "reason": answer.decision.reason.value,
        "subject_id": answer.subject_id,
        "event_id": answer.decision.event_id,
        **source,
    }
    if answer.is_for_person:
        body["contact"] = answer.contact
    return body


@bp.post("/consent/check")
@require(Scope.CONSENT_READ)
def check_batch() -> ResponseReturnValue:
    """Check many email addresses at once.

    ---
    tags: [consent]
    operationId: checkConsentBatch
    description: |
      The same decision as `GET /v1/consent/check` (see there for the reasons and their
      precedence) for up to 10,000 email addresses and one question, answered in input
      order. Duplicates are answered once per occurrence.
    requestBody:
      required: true
      content:
        application/json:
          schema: BatchCheckSchema
          example:
            channel: email
            category: newsletter
            emails: [ada@example.org, grace@example.org]
    responses:
      '200':
        description: One result per email, in input order.
        content:
          application/json:
            schema: {$ref: '#/components/schemas/BatchCheckResult'}
    """
    body = load_body(_batch)
    emails = body["emails"]
    with read_session() as reader:
        decisions = checks.decide_emails(reader, rules(), _question(body), emails)
    # The decisions are shared (one per distinct standing): each is shown and counted once.
    shown: dict[int, tuple[bool, str]] = {}
    tally: dict[str, int] = {}
    results = []
    for email, decision in zip(emails, decisions, strict=True):
        pair = shown.get(id(decision))
        if pair is None:
            pair = shown[id(decision)] = (decision.allowed, decision.reason.value)
        tally[pair[1]] = tally.get(pair[1], 0) + 1
        results.append({"email": email, "allowed": pair[0], "reason": pair[1]})
    count_tallied(tally)
    allowed = sum(1 for r in results if r["allowed"])
    return json_response(
        {"results": results, "allowed": allowed, "denied": len(results) - allowed, **read_source()}
    )
