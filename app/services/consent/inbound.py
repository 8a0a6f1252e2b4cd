"""Provider adapters for opt-outs: Twilio's inbound SMS webhook and SendGrid's Event Webhook.

Each verifies the provider's own signature exactly as its documentation describes, then turns
the call into opt-outs (`opt_outs.record`) or, for START/UNSTOP, a re-grant.

- Twilio (twilio.com/docs/usage/security): X-Twilio-Signature is base64 HMAC-SHA1, keyed
  with the account's auth token, over the full URL Twilio called followed by every POST
  parameter's name and value, sorted by name.
- SendGrid (Signed Event Webhook): X-Twilio-Email-Event-Webhook-Signature is a base64 DER
  ECDSA P-256/SHA-256 signature over X-Twilio-Email-Event-Webhook-Timestamp followed by the
  raw body, verified with the account's base64 DER public key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key
from sqlalchemy.orm import Session

from app.domain.errors import DomainError, InvalidIdentifierError, InvalidSignatureError
from app.domain.identifiers import identifier
from app.domain.rules import Rules
from app.domain.vocabulary import IdentifierKind, Method
from app.models import utcnow
from app.services.consent import ledger, opt_outs

# Twilio's default opt-out and opt-in keywords; the reply is the whole message.
STOP_KEYWORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"})
START_KEYWORDS = frozenset({"START", "UNSTOP"})
HELP_KEYWORDS = frozenset({"HELP", "INFO"})
SENDGRID_TOLERANCE = timedelta(minutes=10)
TWILIO_ACT = ledger.Act(actor="provider:twilio", method=Method.SMS_KEYWORD)
SENDGRID_ACT = ledger.Act(actor="provider:sendgrid", method=Method.PROVIDER_REPORT)


def twilio_signature(auth_token: str, url: str, params: Sequence[tuple[str, str]]) -> str:
    signed = url + "".join(name + value for name, value in sorted(params))
    digest = hmac.new(auth_token.encode(), signed.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def verify_twilio(
    auth_token: str | None, url: str, params: Sequence[tuple[str, str]], signature: str | None
) -> None:
    if not auth_token:
        raise InvalidSignatureError("Twilio is not configured here (TWILIO_AUTH_TOKEN).")
    expected = twilio_signature(auth_token, url, params)
    if not signature or not hmac.compare_digest(expected, signature):
        raise InvalidSignatureError("The X-Twilio-Signature does not verify.")


def verify_sendgrid(
    public_key: str | None,
    body: bytes,
    signature: str | None,
    timestamp: str | None,
    *,
    now: datetime | None = None,
) -> None:
    """Also refuses a timestamp more than 10 minutes off: a replayed old call proves nothing."""
    if not public_key:
        raise InvalidSignatureError(
            "SendGrid is not configured here (SENDGRID_WEBHOOK_PUBLIC_KEY)."
        )
    if not signature or not timestamp or not timestamp.isdigit():
        raise InvalidSignatureError("The SendGrid signature headers are missing.")
    sent_at = datetime.fromtimestamp(int(timestamp[:12]), UTC)
    if abs((now or utcnow()) - sent_at) > SENDGRID_TOLERANCE:
        raise InvalidSignatureError("The SendGrid timestamp is too old or too new.")
    try:
        key = load_der_public_key(base64.b64decode(public_key))
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise InvalidSignatureError("SENDGRID_WEBHOOK_PUBLIC_KEY is not an EC key.")
        key.verify(
            base64.b64decode(signature, validate=True),
            timestamp.encode() + body,
            ec.ECDSA(hashes.SHA256()),
        )
    except (InvalidSignature, ValueError, binascii.Error):
        raise InvalidSignatureError("The SendGrid signature does not verify.") from None


@dataclass(frozen=True)
class SmsAnswer:
    keyword: str | None  # stop | start | help | None (not a keyword)
    outcome: opt_outs.Outcome | None
    reply: str | None  # the text to answer with (HELP), or None for no message


def sms_reply(
    session: Session,
    rules: Rules,
    params: dict[str, str],
    *,
    help_text: str,
    now: datetime | None = None,
) -> SmsAnswer:
    """An inbound SMS: STOP-like words withdraw SMS marketing, START/UNSTOP give it back."""
    word = (params.get("Body") or "").strip().upper()
    if word in HELP_KEYWORDS:
        return SmsAnswer("help", None, help_text)
    if word not in STOP_KEYWORDS | START_KEYWORDS:
        return SmsAnswer(None, None, None)
    try:
        phone = identifier(IdentifierKind.PHONE, params.get("From") or "")
    except InvalidIdentifierError:
        return SmsAnswer(word.lower(), opt_outs.Outcome("invalid_identifier"), None)
    evidence = {
        "provider": "twilio",
        "message_sid": params.get("MessageSid") or params.get("SmsSid"),
        "to": params.get("To"),
        "body": params.get("Body"),
    }
    act = ledger.Act(
        actor=TWILIO_ACT.actor, method=TWILIO_ACT.method, source="twilio", evidence=evidence
    )
    report = opt_outs.OptOut(
        phone,
        "stop_keyword",
        channel="sms",
        provider="twilio",
        reference=evidence["message_sid"],
    )
    now = now or utcnow()
    head = ledger.lock(session)
    if word in START_KEYWORDS:
        outcome = opt_outs.regrant(session, rules, head, phone, act, keyword=word, now=now)
    else:
        (outcome,) = opt_outs.withdraw(session, rules, head, [report], act, now)
    session.commit()
    return SmsAnswer("start" if word in START_KEYWORDS else "stop", outcome, None)


# SendGrid event → our reason. "dropped" names why SendGrid suppressed the address.
SENDGRID_REASONS = {"spamreport": "complaint", "unsubscribe": "unsubscribe"}
SENDGRID_DROPS = {
    "Bounced Address": "bounce",
    "Unsubscribed Address": "unsubscribe",
    "Spam Reporting Address": "complaint",
}


def sendgrid_reason(event: dict[str, Any]) -> str | None:
    kind = event.get("event")
    if kind in SENDGRID_REASONS:
        return SENDGRID_REASONS[str(kind)]
    if kind == "group_unsubscribe":
        return "unsubscribe"
    if kind == "bounce" and event.get("type", "bounce") == "bounce":  # "blocked" is temporary
        return "bounce"
    if kind == "dropped":
        return SENDGRID_DROPS.get(str(event.get("reason")))
    return None


def parse_sendgrid(body: bytes) -> list[dict[str, Any]]:
    try:
        events = json.loads(body)
    except ValueError:
        raise DomainError("The SendGrid body is not JSON.") from None
    if not isinstance(events, list) or not all(isinstance(e, dict) for e in events):
        raise DomainError("The SendGrid body must be a JSON array of events.")
    return events


def esp_events(
    session: Session,
    rules: Rules,
    events: Sequence[dict[str, Any]],
    *,
    now: datetime | None = None,
) -> list[opt_outs.Outcome]:
    """One outcome per event, in order; events that are no opt-out are "ignored"."""
    now = now or utcnow()
    reports: list[tuple[int, opt_outs.OptOut]] = []
    outcomes = [opt_outs.Outcome("ignored") for _ in events]
    for index, event in enumerate(events):
        reason = sendgrid_reason(event)
        if reason is None:
            continue
        try:
            email = identifier(IdentifierKind.EMAIL, str(event.get("email") or ""))
        except InvalidIdentifierError:
            outcomes[index] = opt_outs.Outcome("invalid_identifier")
            continue
        category = event.get("category")
        known = isinstance(category, str) and category in rules.catalog.categories
        stamp = event.get("timestamp")
        reports.append(
            (
                index,
                opt_outs.OptOut(
                    email,
                    reason,
                    channel="email",
                    category=category if known and reason == "unsubscribe" else None,
                    reported_at=(
                        datetime.fromtimestamp(stamp, UTC)
                        if isinstance(stamp, int) and 0 <= stamp < 2**33
                        else None
                    ),
                    provider="sendgrid",
                    reference=str(event.get("sg_event_id") or "")[:200] or None,
                    evidence={
                        "provider": "sendgrid",
                        "event": event.get("event"),
                        "reason": event.get("reason"),
                        "sg_message_id": event.get("sg_message_id"),
                    },
                ),
            )
        )
    act = ledger.Act(actor=SENDGRID_ACT.actor, method=SENDGRID_ACT.method, source="sendgrid")
    head = ledger.lock(session)
    recorded = opt_outs.withdraw(session, rules, head, [r for _, r in reports], act, now)
    for (index, _), outcome in zip(reports, recorded, strict=True):
        outcomes[index] = outcome
    session.commit()
    return outcomes
