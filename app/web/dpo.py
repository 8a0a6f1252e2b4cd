"""The DPO's pages: a login with an audit:read client, counts over time, the trail search,
the imports with each one's refused lines, the webhook receivers' health, and the printable
double opt-in record.

The login sets its own cookie (HttpOnly, SameSite=Strict, path /dpo): a signed token of the
`dpo` link purpose that expires after ACCESS_SESSION_IDLE_MINUTES without a request (each page
renews it) and is checked against the database on every request, so revoking the client, taking its
audit:read scope, or rotating its secret ends every session at once. Every form carries the
app's CSRF token (Flask-WTF).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, TypeVar

from flask import (
    Blueprint,
    Response,
    current_app,
    g,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_babel import get_locale
from marshmallow import EXCLUDE, Schema, fields, pre_load, validate
from werkzeug.wrappers import Response as BaseResponse

from app.api import streamed
from app.domain.datamap import data_map
from app.domain.errors import InvalidTokenError
from app.domain.vocabulary import Action
from app.extensions import limiter
from app.http import inventory, rules, session, settings, signing_keys, tokens
from app.services.audit import dpo, opt_in_evidence, package, trail
from app.services.imports import jobs
from app.services.tokens import Purpose

bp = Blueprint("dpo", __name__, url_prefix="/dpo")

SESSION_COOKIE = "dpo_session"
NAME = validate.Regexp(r"^[a-z][a-z0-9_]{0,63}$")
F = TypeVar("F", bound=Callable[..., Any])


class _Form(Schema):
    class Meta:
        unknown = EXCLUDE

    @pre_load
    def drop_blanks(self, data: Any, **kwargs: Any) -> Any:
        return {k: v.strip() for k, v in data.items() if isinstance(v, str) and v.strip()}


class LoginForm(_Form):
    client_id = fields.String(required=True, validate=validate.Length(max=64))
    client_secret = fields.String(required=True, validate=validate.Length(max=200))


class SearchForm(_Form):
    subject_id = fields.UUID()
    action = fields.String(validate=validate.OneOf([str(a) for a in Action]))
    channel = fields.String(validate=NAME)
    category = fields.String(validate=NAME)
    since = fields.Date(validate=validate.Range(min=date(1970, 1, 1), max=date(9998, 12, 31)))
    until = fields.Date(validate=validate.Range(min=date(1970, 1, 1), max=date(9998, 12, 31)))
    after = fields.Integer(load_default=0, validate=validate.Range(min=0, max=2**62))


_login_form, _search_form = LoginForm(), SearchForm()


def _set_session(response: BaseResponse, payload: dict[str, Any]) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        tokens().make(Purpose.DPO, payload),
        max_age=int(tokens().ttl(Purpose.DPO).total_seconds()),
        path="/dpo",
        httponly=True,
        samesite="Strict",
        secure=settings().base_url.startswith("https://"),
    )


def login_required(view: F) -> F:
    @functools.wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        try:
            data = tokens().open(Purpose.DPO, request.cookies.get(SESSION_COOKIE, "")).payload
        except InvalidTokenError:
            return redirect(url_for("dpo.login"))
        if not dpo.still_allowed(session(), str(data["c"]), str(data["s"])):
            return redirect(url_for("dpo.login"))
        g.dpo = data
        response = current_app.make_response(view(*args, **kwargs))
        if request.endpoint != "dpo.logout":
            _set_session(response, data)  # idle timeout: every page renews the session
        return response

    return wrapped  # type: ignore[return-value]


@bp.get("/login")
def login() -> ResponseReturnValue:
    return Response(render_template("dpo/login.html", refused=False))


@bp.post("/login")
@limiter.limit("10 per minute")  # each try costs a PBKDF2 hash: no guessing, no load
def login_post() -> ResponseReturnValue:
    form = _login_form.load(request.form.to_dict())
    try:
        stamp = dpo.login(session(), form["client_id"], form["client_secret"])
    except dpo.LoginError:
        page = render_template("dpo/login.html", refused=True)  # its text, in the page's language
        return Response(page, status=401)
    response = redirect(url_for("dpo.home"), code=303)
    _set_session(response, {"c": form["client_id"], "s": stamp})
    return response


@bp.post("/logout")
@login_required
def logout() -> ResponseReturnValue:
    response = redirect(url_for("dpo.login"), code=303)
    response.delete_cookie(SESSION_COOKIE, path="/dpo")
    return response


@bp.get("")
@login_required
def home() -> ResponseReturnValue:
    args = _search_form.load(request.args.to_dict())
    filters = trail.EventFilter(
        after=args["after"],
        subject_id=str(args["subject_id"]) if "subject_id" in args else None,
        action=args.get("action"),
        channel=args.get("channel"),
        category=args.get("category"),
        since=datetime.combine(args["since"], time(), UTC) if "since" in args else None,
        until=(
            datetime.combine(args["until"] + timedelta(days=1), time(), UTC)
            if "until" in args
            else None
        ),
    )
    found = dpo.overview(session(), filters)
    # Only the search's own fields go back into links: anything else in the query (such as
    # `_method`, which url_for reads as its own argument) is dropped, as the form drops it.
    query: dict[str, Any] = {
        k: v for k, v in request.args.items() if k in _search_form.fields and k != "after" and v
    }
    next_url = url_for("dpo.home", **query, after=found.next_after) if found.next_after else None
    page = render_template(
        "dpo/home.html",
        overview=found,
        query=query,
        actions=[str(a) for a in Action],
        next_url=next_url,
        first_url=url_for("dpo.home", **query) if args["after"] else None,
        client_id=g.dpo["c"],
        requests=found.requests,
        overdue=found.overdue,
        inventory=inventory(),
        deployment_map=data_map(inventory().flows(str(get_locale() or "en"))),
    )
    return Response(page)


@bp.post("/verify")
@login_required
def verify() -> ResponseReturnValue:
    """Check the whole proof, as `GET /v1/audit/verify` and `audit verify` do; changes nothing."""
    result = trail.verify(session())
    page = render_template("dpo/verify.html", result=result, client_id=g.dpo["c"])
    return page


@bp.get("/package")
@login_required
def download_package() -> ResponseReturnValue:
    """The audit package an auditor verifies offline (`audit verify --file --key`)."""
    keys, catalog = signing_keys(), rules().catalog.as_dict()
    filters = trail.EventFilter()
    return Response(
        streamed(lambda own: package.stream(own, filters, keys, catalog)),
        mimetype="application/x-ndjson",
        headers={"Content-Disposition": 'attachment; filename="audit-package.ndjson"'},
    )


@bp.get("/subjects/<uuid:subject_id>/double-opt-in")
@login_required
def double_opt_in(subject_id: Any) -> ResponseReturnValue:
    record = opt_in_evidence.record(session(), str(subject_id))
    page = render_template("dpo/double_opt_in.html", record=record)
    return Response(page)


@bp.get("/imports/<uuid:import_id>")
@login_required
def import_errors(import_id: Any) -> ResponseReturnValue:
    """One import's counts and its refused lines (the first MAX_ERRORS_SHOWN), line by line."""
    found = jobs.report(session(), str(import_id))
    page = render_template(
        "dpo/import.html", job=found.job, errors=found.errors, shown_at_most=jobs.MAX_ERRORS_SHOWN
    )
    return Response(page)
