"""The provider adapters: Twilio inbound SMS and SendGrid's Signed Event Webhook.

Each signature scheme is pinned to the provider's own published example first (Twilio's
security docs; the test vector of SendGrid's own library), then driven through HTTP with a
valid and a forged signature.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from app.domain.errors import InvalidSignatureError
from app.domain.identifiers import identifier
from app.domain.rules import Rules
from app.domain.vocabulary import IdentifierKind
from app.models import ConsentEvent
from app.services.consent import inbound, ledger
from app.services.optin import subscriptions
from tests.factories import make_act, make_subscriber

# twilio.com/docs/usage/security: the documented example.
TWILIO_DOC_TOKEN = "12345"
TWILIO_DOC_URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
TWILIO_DOC_PARAMS = [
    ("CallSid", "CA1234567890ABCDE"),
    ("Caller", "+14158675309"),
    ("Digits", "1234"),
    ("From", "+14158675309"),
    ("To", "+18005551212"),
]
TWILIO_DOC_SIGNATURE = "RSOYDt4T1cUTdK1PDd93/VVr8B8="

# sendgrid-python test/unit/test_eventwebhook.py: the library's own vector.
SENDGRID_KEY = (
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE83T4O/n84iotIvIW4mdBgQ/7dAfSmpqIM8kF9mN1flpVKS3GRqe62gw"
    "+2fNNRaINXvVpiglSI8eNEc6wEA3F+g=="
)
SENDGRID_SIGNATURE = (
    "MEUCIGHQVtGj+Y3LkG9fLcxf3qfI10QysgDWmMOVmxG0u6ZUAiEAyBiXDWzM+uOe5W0Ju"
    "G+luQAbPIqHh89M15TluLtEZtM="
)
SENDGRID_TIMESTAMP = "1600112502"
SENDGRID_PAYLOAD = (
    json.dumps(
        [
            {
                "email": "hello@world.com",
                "event": "dropped",
                "reason": "Bounced Address",
                "sg_event_id": "ZHJvcC0xMDk5NDkxOS1MUnpYbF9OSFN0T0doUTRrb2ZTbV9BLTA",
                "sg_message_id": (
                    "LRzXl_NHStOGhQ4kofSm_A.filterdrecv-p3mdw1-756b745b58-kmzbl-18-5F5FC76C-9.0"
                ),
                "smtp-id": "<LRzXl_NHStOGhQ4kofSm_A@ismtpd0039p1iad1.sendgrid.net>",
                "timestamp": 1600112492,
            }
        ],
        sort_keys=True,
        separators=(",", ":"),
    )
    + "\r\n"
)
SENDGRID_SIGNED_AT = datetime.fromtimestamp(int(SENDGRID_TIMESTAMP), UTC)

# Twilio's documented inbound-message parameters (Messaging webhook), as Twilio posts them.
PHONE = "+14155550100"


def sms_params(body: str) -> dict[str, str]:
    return {
        "ToCountry": "US",
        "ToState": "CA",
        "SmsMessageSid": "SM1f0e8ae6ade43cb3c0ce4525424e404f",
        "NumMedia": "0",
        "ToCity": "",
        "FromZip": "",
        "SmsSid": "SM1f0e8ae6ade43cb3c0ce4525424e404f",
        "FromState": "CA",
        "SmsStatus": "received",
        "FromCity": "SAN FRANCISCO",
        "Body": body,
        "FromCountry": "US",
        "To": "+15017250604",
        "ToZip": "",
        "NumSegments": "1",
        "MessageSid": "SM1f0e8ae6ade43cb3c0ce4525424e404f",
        "AccountSid": "ACXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
        "From": PHONE,
        "ApiVersion": "2010-04-01",
    }


def test_twilio_signature_matches_the_documented_example() -> None:
    assert (
        inbound.twilio_signature(TWILIO_DOC_TOKEN, TWILIO_DOC_URL, TWILIO_DOC_PARAMS)
        == TWILIO_DOC_SIGNATURE
    )
    inbound.verify_twilio(TWILIO_DOC_TOKEN, TWILIO_DOC_URL, TWILIO_DOC_PARAMS, TWILIO_DOC_SIGNATURE)
    tampered = [*TWILIO_DOC_PARAMS[:2], ("Digits", "9999"), *TWILIO_DOC_PARAMS[3:]]
    with pytest.raises(InvalidSignatureError):
        inbound.verify_twilio(TWILIO_DOC_TOKEN, TWILIO_DOC_URL, tampered, TWILIO_DOC_SIGNATURE)


def test_sendgrid_signature_matches_the_libraries_vector() -> None:
    body = SENDGRID_PAYLOAD.encode()
    inbound.verify_sendgrid(
        SENDGRID_KEY, body, SENDGRID_SIGNATURE, SENDGRID_TIMESTAMP, now=SENDGRID_SIGNED_AT
    )
    with pytest.raises(InvalidSignatureError):
        inbound.verify_sendgrid(
            SENDGRID_KEY, b"payload", SENDGRID_SIGNATURE, SENDGRID_TIMESTAMP, now=SENDGRID_SIGNED_AT
        )
    with pytest.raises(InvalidSignatureError, match="too old"):  # the same call replayed now
        inbound.verify_sendgrid(SENDGRID_KEY, body, SENDGRID_SIGNATURE, SENDGRID_TIMESTAMP)
    assert inbound.sendgrid_reason(json.loads(SENDGRID_PAYLOAD)[0]) == "bounce"


# --- Twilio through HTTP --------------------------------------------------------------------


@pytest.fixture
def twilio(make_app: Callable[..., Flask]) -> FlaskClient:
    return make_app(twilio_auth_token="twilio-token").test_client()


def post_sms(client: FlaskClient, body: str, *, forge: bool = False) -> Any:
    params = sms_params(body)
    url = "http://localhost:5000/inbound/twilio/sms"
    signature = inbound.twilio_signature("twilio-token", url, sorted(params.items()))
    if forge:
        signature = inbound.twilio_signature("another-token", url, sorted(params.items()))
    return client.post(
        "/inbound/twilio/sms", data=params, headers={"X-Twilio-Signature": signature}
    )


def sms_subscriber(session: Session, rules: Rules) -> str:
    made = subscriptions.request(
        session,
        rules,
        subscriptions.OptIn(identifier(IdentifierKind.PHONE, PHONE), "sms", ["offers"]),
        make_act(),
    )
    return made.subject_id


def sms_status(session: Session, subject_id: str) -> str:
    session.rollback()  # a fresh snapshot: the app committed through its own connection
    standings = ledger.standings(session, subject_id)
    return str(
        next(s.status for t, s in standings.items() if t.channel == "sms" and not t.category)
    )


def test_stop_withdraws_sms_marketing_and_start_gives_it_back(
    twilio: FlaskClient, session: Session, rules: Rules
) -> None:
    subject_id = sms_subscriber(session, rules)
    assert sms_status(session, subject_id) == "granted"

    stopped = post_sms(twilio, "  Stop ")
    assert stopped.status_code == 200
    assert stopped.mimetype == "text/xml"
    assert sms_status(session, subject_id) == "withdrawn"
    assert post_sms(twilio, "END").status_code == 200  # already withdrawn: nothing new

    assert post_sms(twilio, "UNSTOP").status_code == 200
    assert sms_status(session, subject_id) == "granted"
    events = session.query(ConsentEvent).order_by(ConsentEvent.seq).all()
    assert [(e.action, e.method) for e in events[-2:]] == [
        ("withdraw", "sms_keyword"),
        ("grant", "sms_keyword"),
    ]
    assert events[-2].evidence_hash  # the provider's message, kept as erasable evidence


@pytest.mark.parametrize("word", ["UNSUBSCRIBE", "cancel", "quit", "STOPALL"])
def test_every_stop_word_withdraws(
    twilio: FlaskClient, session: Session, rules: Rules, word: str
) -> None:
    subject_id = sms_subscriber(session, rules)
    answer = post_sms(twilio, word)
    assert answer.status_code == 200, answer.data
    assert sms_status(session, subject_id) == "withdrawn"


def test_help_answers_and_changes_nothing(
    twilio: FlaskClient, session: Session, rules: Rules
) -> None:
    subject_id = sms_subscriber(session, rules)
    answer = post_sms(twilio, "help")
    assert b"<Message>Reply STOP" in answer.data
    assert sms_status(session, subject_id) == "granted"


def test_a_forged_twilio_signature_is_a_403_and_changes_nothing(
    twilio: FlaskClient, session: Session, rules: Rules
) -> None:
    subject_id = sms_subscriber(session, rules)
    answer = post_sms(twilio, "STOP", forge=True)
    assert answer.status_code == 403
    assert answer.mimetype == "application/problem+json"
    unsigned = twilio.post("/inbound/twilio/sms", data=sms_params("STOP"))
    assert unsigned.status_code == 403
    assert sms_status(session, subject_id) == "granted"


# --- SendGrid through HTTP ------------------------------------------------------------------


@pytest.fixture
def signing_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def sendgrid(
    make_app: Callable[..., Flask], signing_key: ec.EllipticCurvePrivateKey
) -> FlaskClient:
    public = signing_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return make_app(sendgrid_webhook_public_key=base64.b64encode(public).decode()).test_client()


def post_events(
    client: FlaskClient, key: ec.EllipticCurvePrivateKey, events: list[dict[str, Any]]
) -> Any:
    body = (json.dumps(events, separators=(",", ":")) + "\r\n").encode()
    timestamp = str(int(datetime.now(UTC).timestamp()))
    signature = key.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    return client.post(
        "/inbound/sendgrid/events",
        data=body,
        content_type="application/json",
        headers={
            "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
            "X-Twilio-Email-Event-Webhook-Timestamp": timestamp,
        },
    )


def sendgrid_event(kind: str, email: str, **extra: Any) -> dict[str, Any]:
    """The shape of SendGrid's documented sample events."""
    return {
        "email": email,
        "timestamp": 1513299569,
        "smtp-id": "<14c5d75ce93.dfd.64b469@ismtpd-555>",
        "event": kind,
        "category": "cat facts",
        "sg_event_id": f"sg_event_id_{kind}",
        "sg_message_id": "sg_message_id",
        **extra,
    }


def test_a_complaint_withdraws_all_email_marketing_of_the_address(
    sendgrid: FlaskClient,
    signing_key: ec.EllipticCurvePrivateKey,
    api_check: Callable[[str, str], str],
    session: Session,
    rules: Rules,
) -> None:
    make_subscriber(session, rules, email="spam@example.org", categories=["newsletter", "offers"])
    answer = post_events(
        sendgrid,
        signing_key,
        [
            sendgrid_event("delivered", "spam@example.org"),
            sendgrid_event("spamreport", "spam@example.org"),
        ],
    )
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json() == {"results": ["ignored", "withdrawn"]}
    assert api_check("spam@example.org", "newsletter") == "withdrawn"
    assert api_check("spam@example.org", "offers") == "withdrawn"


def test_unsubscribes_and_bounces_withdraw(
    sendgrid: FlaskClient,
    signing_key: ec.EllipticCurvePrivateKey,
    api_check: Callable[[str, str], str],
    session: Session,
    rules: Rules,
) -> None:
    for email in ("u@example.org", "b@example.org", "blocked@example.org"):
        make_subscriber(session, rules, email=email)
    answer = post_events(
        sendgrid,
        signing_key,
        [
            sendgrid_event("unsubscribe", "u@example.org"),
            sendgrid_event("bounce", "b@example.org", type="bounce", reason="550 no such user"),
            sendgrid_event("bounce", "blocked@example.org", type="blocked"),
        ],
    )
    assert answer.get_json() == {"results": ["withdrawn", "withdrawn", "ignored"]}
    assert api_check("u@example.org", "newsletter") == "withdrawn"
    assert api_check("b@example.org", "newsletter") == "withdrawn"
    assert api_check("blocked@example.org", "newsletter") == "granted"


def test_a_forged_sendgrid_signature_is_a_403_and_changes_nothing(
    sendgrid: FlaskClient,
    api_check: Callable[[str, str], str],
    session: Session,
    rules: Rules,
) -> None:
    make_subscriber(session, rules, email="spam@example.org")
    forger = ec.generate_private_key(ec.SECP256R1())
    answer = post_events(sendgrid, forger, [sendgrid_event("spamreport", "spam@example.org")])
    assert answer.status_code == 403
    assert answer.mimetype == "application/problem+json"
    replayed = sendgrid.post(
        "/inbound/sendgrid/events",
        data=SENDGRID_PAYLOAD,
        content_type="application/json",
        headers={
            "X-Twilio-Email-Event-Webhook-Signature": SENDGRID_SIGNATURE,
            "X-Twilio-Email-Event-Webhook-Timestamp": SENDGRID_TIMESTAMP,
        },
    )
    assert replayed.status_code == 403
    assert api_check("spam@example.org", "newsletter") == "granted"


@pytest.fixture
def api_check(sendgrid: FlaskClient, make_api: Callable[..., Any]) -> Callable[[str, str], str]:
    api = make_api("consent:read")

    def check(email: str, category: str) -> str:
        url = f"/v1/consent/check?email={email}&channel=email&category={category}"
        return str(api.get(url).get_json()["reason"])

    return check
