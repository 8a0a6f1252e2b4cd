"""The DPO's pages: a login with an audit:read client, counts over time, the trail search,
and the printable double opt-in record.

The login sets its own cookie (HttpOnly, SameSite=Strict, path /dpo), signed with SECRET_KEY
and checked against the database on every request: revoking the client, taking its
audit:read scope, or rotating its secret ends every session at once. Forms carry a CSRF token.
"""

from __future__ import annotations

import functools
import hmac
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta
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
from itsdangerous import BadSignature, URLSafeTimedSerializer
from marshmallow import EXCLUDE, Schema, fields, pre_load, validate
from werkzeug.wrappers import Response as BaseResponse

from app.domain.vocabulary import Action
from app.extensions import db
from app.services import audit, dashboard, evidence

bp = Blueprint("dpo", __name__, url_prefix="/dpo")

SESSION_COOKIE = "dpo_session"
CSRF_COOKIE = "dpo_csrf"
SESSION_AGE = timedelta(hours=8)
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
    csrf_token = fields.String(required=True)


class LogoutForm(_Form):
    csrf_token = fields.String(required=True)


class SearchForm(_Form):
    subject_id = fields.UUID()
    action = fields.String(validate=validate.OneOf([str(a) for a in Action]))
    channel = fields.String(validate=NAME)
    category = fields.String(validate=NAME)
    since = fields.Date()
    until = fields.Date()
    after = fields.Integer(load_default=0, validate=validate.Range(min=0))


_login_form, _logout_form, _search_form = LoginForm(), LogoutForm(), SearchForm()


def _signer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt="dpo-session")


def _secure() -> bool:
    return bool(current_app.extensions["settings"].base_url.startswith("https://"))


def _set_cookie(response: BaseResponse, name: str, value: str, max_age: int | None = None) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/dpo",
        httponly=True,
        samesite="Strict",
        secure=_secure(),
    )


def _no_store(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    return response


def login_required(view: F) -> F:
    @functools.wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        try:
            data = _signer().loads(
                request.cookies.get(SESSION_COOKIE, ""),
                max_age=int(SESSION_AGE.total_seconds()),
            )
        except BadSignature:
            return redirect(url_for("dpo.login"))
        if not dashboard.still_allowed(db.session(), data["client_id"], data["stamp"]):
            return redirect(url_for("dpo.login"))
        g.dpo = data
        return view(*args, **kwargs)

    return wrapped  # type: ignore[return-value]


def _csrf_matches(sent: str, expected: str | None) -> bool:
    return bool(expected) and hmac.compare_digest(sent.encode(), str(expected).encode())


@bp.get("/login")
def login() -> ResponseReturnValue:
    token = request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(32)
    response = Response(render_template("dpo/login.html", csrf_token=token, error=None))
    _set_cookie(response, CSRF_COOKIE, token)
    return _no_store(response)


@bp.post("/login")
def login_post() -> ResponseReturnValue:
    form = _login_form.load(request.form.to_dict())
    if not _csrf_matches(form["csrf_token"], request.cookies.get(CSRF_COOKIE)):
        return _no_store(
            Response(
                render_template(
                    "dpo/login.html",
                    csrf_token=form["csrf_token"],
                    error="The form expired; please sign in again.",
                ),
                status=400,
            )
        )
    try:
        stamp = dashboard.login(db.session(), form["client_id"], form["client_secret"])
    except dashboard.LoginError as error:
        page = render_template("dpo/login.html", csrf_token=form["csrf_token"], error=error.detail)
        return _no_store(Response(page, status=401))
    value = _signer().dumps(
        {"client_id": form["client_id"], "stamp": stamp, "csrf": secrets.token_urlsafe(32)}
    )
    response = redirect(url_for("dpo.home"), code=303)
    _set_cookie(response, SESSION_COOKIE, value, int(SESSION_AGE.total_seconds()))
    response.delete_cookie(CSRF_COOKIE, path="/dpo")
    return response


@bp.post("/logout")
@login_required
def logout() -> ResponseReturnValue:
    form = _logout_form.load(request.form.to_dict())
    response = redirect(url_for("dpo.login"), code=303)
    if _csrf_matches(form["csrf_token"], g.dpo.get("csrf")):
        response.delete_cookie(SESSION_COOKIE, path="/dpo")
    return response


@bp.get("")
@login_required
def home() -> ResponseReturnValue:
    args = _search_form.load(request.args.to_dict())
    filters = audit.EventFilter(
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
    found = dashboard.overview(db.session(), filters)
    query: dict[str, Any] = {k: v for k, v in request.args.items() if k != "after" and v}
    next_url = url_for("dpo.home", **query, after=found.next_after) if found.next_after else None
    page = render_template(
        "dpo/home.html",
        overview=found,
        query=query,
        actions=[str(a) for a in Action],
        next_url=next_url,
        first_url=url_for("dpo.home", **query) if args["after"] else None,
        csrf_token=g.dpo["csrf"],
        client_id=g.dpo["client_id"],
    )
    return _no_store(Response(page))


@bp.get("/subjects/<uuid:subject_id>/double-opt-in")
@login_required
def double_opt_in(subject_id: Any) -> ResponseReturnValue:
    record = evidence.double_opt_in(db.session(), str(subject_id))
    page = render_template("dpo/double_opt_in.html", record=record, csrf_token=g.dpo["csrf"])
    return _no_store(Response(page))
