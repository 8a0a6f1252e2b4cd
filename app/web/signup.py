"""The public opt-in page (/subscribe) and the double opt-in confirmation pages (/confirm)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, g, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import get_locale, refresh
from marshmallow import EXCLUDE, Schema, ValidationError, fields, post_load, validate

from app.domain.errors import InvalidIdentifierError, UnknownTopicError
from app.domain.identifiers import identifier
from app.domain.vocabulary import IdentifierKind, Method
from app.extensions import csrf
from app.http import client_ip, mailer, rules, session, settings, tokens, user_agent
from app.limits import link_limit, mailbox_limit, public_form_limit
from app.services.consent.ledger import Act
from app.services.optin import confirmation, subscriptions
from app.services.tokens import Purpose

bp = Blueprint("signup", __name__)

FORM_ID = "subscribe"
PAGE_BY_STATE = {
    confirmation.State.PENDING: "signup/confirm.html",
    confirmation.State.CONFIRMED: "signup/confirmed.html",
    confirmation.State.ALREADY_CONFIRMED: "signup/already.html",
    confirmation.State.EXPIRED: "signup/expired.html",
}

RENEWED_PAGE_BY_STATE = PAGE_BY_STATE | {confirmation.State.PENDING: "signup/renewed.html"}


class SubscribeFormSchema(Schema):
    class Meta:
        unknown = EXCLUDE  # csrf_token and the submit button

    email = fields.String(required=True, validate=validate.Length(min=3, max=320))
    categories = fields.List(fields.String(validate=validate.Length(max=64)), load_default=list)
    notice_version = fields.String(required=True, validate=validate.Length(max=64))
    # The honeypot: hidden from people by CSS, filled in by form-filling bots.
    website = fields.String(load_default="")

    @post_load
    def flag_bots(self, data: dict[str, Any], **_: Any) -> dict[str, Any]:
        data["is_bot"] = bool(data.pop("website").strip())
        return data


_form = SubscribeFormSchema()


def locale() -> str:
    return str(get_locale() or "en")


@bp.get("/subscribe")
def subscribe_page() -> ResponseReturnValue:
    return _render_form({}, {})


@bp.post("/subscribe")
@public_form_limit
@mailbox_limit
def subscribe() -> ResponseReturnValue:
    raw = {
        "email": request.form.get("email", ""),
        "categories": request.form.getlist("categories"),
        "notice_version": request.form.get("notice_version", ""),
        "website": request.form.get("website", ""),
    }
    try:
        body = _form.load(raw)
        if not body["is_bot"]:  # a bot gets the same page as a person, and nothing is recorded
            subscriptions.subscribe(
                session(),
                rules(),
                mailer(),
                subscriptions.OptIn(
                    identifier(IdentifierKind.EMAIL, body["email"]), "email", body["categories"]
                ),
                _act("web:/subscribe", Method.FORM, body["notice_version"]),
                is_notice_required=True,
                is_known_told=True,
            )
    except ValidationError as error:
        return _render_form(raw, _messages(error.messages)), 422
    except (InvalidIdentifierError, UnknownTopicError) as error:
        return _render_form(raw, dict(error.errors or {})), 422
    return redirect(url_for(".sent", lang=locale()), code=303)


@bp.get("/subscribe/sent")
def sent() -> ResponseReturnValue:
    return render_template("signup/sent.html", **_lifetimes())


@bp.get("/confirm/<token>")
@link_limit
def confirm_page(token: str) -> ResponseReturnValue:
    """Changes nothing: mail scanners follow links. The page's script POSTs for a person."""
    found = confirmation.inspect(session(), tokens(), token)
    return _page(PAGE_BY_STATE, found, token)


@bp.post("/confirm/<token>")
@link_limit  # per link, not per IP: a whole office behind one NAT confirms its own links
def confirm(token: str) -> ResponseReturnValue:
    found = confirmation.confirm(
        session(), rules(), tokens(), token, _act("web:/confirm", Method.DOUBLE_OPT_IN)
    )
    return _page(PAGE_BY_STATE, found, token)


# The signed token in the URL is the proof (a capability URL): a plain POST from a browser
# without cookies, or an integrator's landing page, confirms with no second, form token.
csrf.exempt(confirm)


@bp.post("/confirm/<token>/renew")
@public_form_limit
@link_limit
def renew(token: str) -> ResponseReturnValue:
    found = confirmation.renew(session(), rules(), mailer(), token)
    return _page(RENEWED_PAGE_BY_STATE, found, token)


def _page(pages: dict[confirmation.State, str], found: confirmation.Outcome, token: str) -> str:
    """The outcome's page, in the language of the request unless ?lang= says otherwise."""
    g.locale = found.locale
    refresh()
    return render_template(pages[found.state], token=token, **_lifetimes())


def _act(capture_point: str, method: Method, notice_version: str | None = None) -> Act:
    return Act(
        actor="subject",
        method=method,
        source="web",
        capture_point=capture_point,
        locale=locale(),
        notice_version=notice_version,
        ip=client_ip(),
        user_agent=user_agent(),
        evidence={"form": FORM_ID} if method is Method.FORM else {},
    )


def _render_form(values: dict[str, Any], errors: dict[str, Any]) -> str:
    page = subscriptions.form(session(), rules(), locale())
    return render_template(
        "signup/subscribe.html",
        page=page,
        values=values,
        errors=errors,
    )


def _lifetimes() -> dict[str, int]:
    """How long a confirmation link works and an unconfirmed request is kept, for next steps."""
    return {
        "confirm_hours": int(tokens().ttl(Purpose.CONFIRM).total_seconds() // 3600),
        "pending_days": settings().pending_retention.days,
    }


def _messages(messages: Any) -> dict[str, Any]:
    return messages if isinstance(messages, dict) else {"_schema": messages}
