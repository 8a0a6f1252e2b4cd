"""The person's pages: preference center (/p/), one-click unsubscribe (/u/), email-me-a-link.

Tokens travel in these URLs, so every response says `Referrer-Policy: no-referrer` (and, as
every page does, app/security.py's `Cache-Control: no-store`).
"""

from __future__ import annotations

from datetime import date
from typing import Any

from flask import Blueprint, Response, g, jsonify, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import get_locale
from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate

from app.api.schemas import TrimmedEmail
from app.domain.catalog import LOCALES
from app.domain.errors import InvalidIdentifierError, InvalidTokenError
from app.domain.vocabulary import IdentifierKind
from app.errors import status_of
from app.extensions import csrf
from app.http import (
    client_ip,
    mail_templates,
    mailer,
    rules,
    session,
    settings,
    tokens,
    user_agent,
)
from app.limits import link_limit, mailbox_limit, public_form_limit
from app.services.preference_center import message_links, preference_page
from app.services.tokens import Purpose

bp = Blueprint("preferences_page", __name__)

GPC_LAST_UPDATE = date(2026, 11, 23)  # when /.well-known/gpc.json's promise last changed
LANG_COOKIE_AGE = 365 * 24 * 3600
NAME = r"[a-z][a-z0-9_]{0,63}"


class PreferencesFormSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    pair = fields.List(
        fields.String(validate=validate.Regexp(rf"^{NAME}:{NAME}$")), load_default=list
    )
    purpose = fields.List(fields.String(validate=validate.Regexp(rf"^{NAME}$")), load_default=list)
    notice_version = fields.String(validate=validate.Length(max=64), load_default=None)
    locale = fields.String(validate=validate.OneOf(LOCALES), load_default="en")


class LinkRequestFormSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    email = TrimmedEmail(required=True, validate=validate.Length(max=320))
    website = fields.String(load_default="")  # the honeypot: people never see it, bots fill it


class ContactFormSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    value = fields.String(required=True, validate=validate.Length(min=1, max=320))
    locale = fields.String(validate=validate.OneOf(LOCALES), load_default="en")


_form = PreferencesFormSchema()
_contact = ContactFormSchema()
_link_request = LinkRequestFormSchema()


def _visit() -> preference_page.PreferenceVisit:
    return preference_page.PreferenceVisit(
        ip=client_ip(), user_agent=user_agent(), is_gpc=request.headers.get("Sec-GPC") == "1"
    )


def _pick_locale(stored: str | None) -> str:
    g.locale = stored  # app.select_locale: ?lang=, cookie, then this, then Accept-Language
    return str(get_locale() or "en")


def _form_data() -> dict[str, Any]:
    form = request.form
    return {
        "pair": form.getlist("pair"),
        "purpose": form.getlist("purpose"),
        "notice_version": form.get("notice_version") or None,
        "locale": form.get("locale") or "en",
    }


@bp.after_request
def private_page(response: Response) -> Response:
    response.headers["Referrer-Policy"] = "no-referrer"
    lang = request.args.get("lang")
    if lang in LOCALES:
        response.set_cookie(
            "lang", lang, max_age=LANG_COOKIE_AGE, httponly=True, samesite="Lax", path="/"
        )
    return response


@bp.context_processor
def page_context() -> dict[str, Any]:
    return {
        "days": tokens().ttl(Purpose.PREFERENCES).days,
    }


@bp.errorhandler(InvalidTokenError)
def bad_link(error: InvalidTokenError) -> ResponseReturnValue:
    session().rollback()
    status = status_of(error)
    return render_template("preferences/link_error.html", status=status), status


@bp.get("/p/<token>")
@link_limit
def page(token: str) -> ResponseReturnValue:
    shown = preference_page.show(
        session(), rules(), tokens(), token, _visit(), pick_locale=_pick_locale
    )
    catalog = rules().catalog
    return render_template(
        "preferences/page.html",
        page=shown,
        token=token,
        catalog=catalog,
        pairs={(p.channel, p.category): p for p in shown.view.pairs},
        marketing=[c for c in catalog.categories.values() if not c.is_transactional],
        transactional=[c for c in catalog.categories.values() if c.is_transactional],
        saved=request.args.get("saved"),
        contact_problem=(request.args.get("contact"), request.args.get("problem")),
        can_add_phone="sms" in catalog.channels,
    )


@bp.post("/p/<token>")
@link_limit
def save(token: str) -> ResponseReturnValue:
    form = _form.load(_form_data())
    preference_page.save(
        session(),
        rules(),
        tokens(),
        token,
        _visit(),
        pairs={(c, k) for c, _, k in (p.partition(":") for p in form["pair"])},
        purposes=set(form["purpose"]),
        locale=form["locale"],
        notice_version=form["notice_version"],
    )
    return redirect(url_for(".page", token=token, saved="1"), 303)


@bp.post("/p/<token>/unsubscribe-all")
@link_limit
def unsubscribe_all(token: str) -> ResponseReturnValue:
    form = _form.load(_form_data())
    preference_page.unsubscribe_all(
        session(),
        rules(),
        tokens(),
        token,
        _visit(),
        locale=form["locale"],
        notice_version=form["notice_version"],
    )
    return redirect(url_for(".page", token=token, saved="all"), 303)


@bp.post("/p/<token>/identifiers/<identifier_id>/remove")
def remove_identifier(token: str, identifier_id: str) -> ResponseReturnValue:
    form = _form.load(_form_data())
    preference_page.remove_identifier(
        session(), tokens(), token, identifier_id, _visit(), locale=form["locale"]
    )
    return redirect(url_for(".page", token=token, saved="removed"), 303)


@bp.post("/p/<token>/contacts/email")
@public_form_limit  # it sends mail: the per-IP and per-mailbox budgets of every such form
@mailbox_limit
@link_limit
def add_email(token: str) -> ResponseReturnValue:
    return _add_contact(token, IdentifierKind.EMAIL, "email")


@bp.post("/p/<token>/contacts/phone")
@link_limit
def add_phone(token: str) -> ResponseReturnValue:
    return _add_contact(token, IdentifierKind.PHONE, "phone")


def _add_contact(token: str, kind: IdentifierKind, field: str) -> ResponseReturnValue:
    """The same redirect whatever became of the address; only a malformed or suppressed one
    is told, on the page, what is wrong with it."""
    raw = {"value": request.form.get(field, ""), "locale": request.form.get("locale") or "en"}
    try:
        form = _contact.load(raw)
        preference_page.add_contact(
            session(),
            rules(),
            mailer(),
            token,
            _visit(),
            kind=kind,
            value=form["value"],
            locale=form["locale"],
        )
    except (ValidationError, InvalidIdentifierError) as error:
        session().rollback()
        refused = isinstance(error, preference_page.ContactRefusedError)
        problem = "refused" if refused else "invalid"
        return redirect(url_for(".page", token=token, contact=field, problem=problem), 303)
    return redirect(url_for(".page", token=token, saved=f"added-{field}"), 303)


@bp.get("/u/<token>")
@link_limit
def unsubscribe_page(token: str) -> ResponseReturnValue:
    shown = message_links.describe_unsubscribe(
        session(), rules(), tokens(), settings().base_url, token
    )
    g.locale = shown.locale
    return render_template(
        "preferences/unsubscribe.html", shown=shown, token=token, catalog=rules().catalog
    )


@bp.post("/u/<token>")
@link_limit
def unsubscribe(token: str) -> ResponseReturnValue:
    if request.form.get("List-Unsubscribe") != "One-Click":
        csrf.protect()
    done = message_links.unsubscribe(
        session(),
        rules(),
        tokens(),
        settings().base_url,
        token,
        ip=client_ip(),
        user_agent=user_agent(),
    )
    g.locale = done.locale
    return render_template("preferences/unsubscribed.html", shown=done, catalog=rules().catalog)


# RFC 8058: the mailbox provider posts with no cookie, so no CSRF token; the page's own button
# posts another body and is checked by hand above.
csrf.exempt(unsubscribe)


@bp.get("/preferences")
def request_link_form() -> ResponseReturnValue:
    return render_template("preferences/request.html", sent=request.args.get("sent"), errors={})


@bp.post("/preferences")
@public_form_limit
@mailbox_limit
def request_link() -> ResponseReturnValue:
    try:
        form = _link_request.load(request.form.to_dict())
    except ValidationError as error:
        errors = error.messages if isinstance(error.messages, dict) else {}
        return render_template("preferences/request.html", sent=None, errors=errors), 422
    if not form["website"]:
        preference_page.request_link(
            session(),
            rules(),
            tokens(),
            mail_templates(),
            form["email"],
            base_url=settings().base_url,
            mail_from=settings().sender,
            locale=str(get_locale() or "en"),
        )
    return redirect(url_for(".request_link_form", sent="1"), 303)


@bp.get("/.well-known/gpc.json")
def gpc() -> ResponseReturnValue:
    """The GPC spec's well-known resource: this site honours the signal.

    ---
    tags: [meta]
    operationId: getGpcSupport
    summary: Global Privacy Control support
    description: |
      The GPC specification's well-known resource: this site honours the `Sec-GPC: 1`
      signal. A person's page request carrying it opts them out of every purpose the
      catalog marks `gpc_opt_out` (`partner_sharing` by default), recorded with actor
      `browser:gpc` and method `gpc`. Public, without authentication.
    security: []
    responses:
      '200':
        description: The site honours GPC.
        content:
          application/json:
            schema:
              type: object
              required: [gpc, lastUpdate]
              properties:
                gpc:
                  type: boolean
                  enum:
                  - true
                lastUpdate:
                  type: string
                  format: date
                  description: When this promise last changed.
            example:
              gpc: true
              lastUpdate: '2026-11-23'
    """
    return jsonify({"gpc": True, "lastUpdate": GPC_LAST_UPDATE.isoformat()})
