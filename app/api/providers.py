"""Inbound provider webhooks (no bearer token: each provider signs its own calls)."""

from __future__ import annotations

from xml.sax.saxutils import escape

from flask import Blueprint, Response, request
from flask.typing import ResponseReturnValue

from app.http import rules, session, settings
from app.services.consent import inbound

bp = Blueprint("providers", __name__)

SMS_HELP = "Reply STOP to stop marketing texts, START to receive them again."


def _public_url() -> str:
    """The URL the provider called, as it signed it: BASE_URL, then path and query."""
    query = request.query_string.decode()
    return settings().base_url + request.path + (f"?{query}" if query else "")


@bp.post("/inbound/twilio/sms")
def twilio_sms() -> ResponseReturnValue:
    params = list(request.form.items(multi=True))
    inbound.verify_twilio(
        settings().twilio_auth_token,
        _public_url(),
        params,
        request.headers.get("X-Twilio-Signature"),
    )
    answer = inbound.sms_reply(session(), rules(), request.form.to_dict(), help_text=SMS_HELP)
    message = f"<Message>{escape(answer.reply)}</Message>" if answer.reply else ""
    twiml = f'<?xml version="1.0" encoding="UTF-8"?><Response>{message}</Response>'
    return Response(twiml, mimetype="text/xml")


@bp.post("/inbound/sendgrid/events")
def sendgrid_events() -> ResponseReturnValue:
    body = request.get_data(cache=True)
    inbound.verify_sendgrid(
        settings().sendgrid_webhook_public_key,
        body,
        request.headers.get("X-Twilio-Email-Event-Webhook-Signature"),
        request.headers.get("X-Twilio-Email-Event-Webhook-Timestamp"),
    )
    outcomes = inbound.esp_events(session(), rules(), inbound.parse_sendgrid(body))
    return {"results": [o.outcome for o in outcomes]}
