"""The privacy security center pages: ask for access, open it, see, download and delete."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, g, redirect, render_template, request, url_for
from flask.blueprints import BlueprintSetupState
from flask.typing import ResponseReturnValue
from flask_babel import get_locale, refresh

from app.domain.datamap import data_map
from app.domain.errors import (
    ExpiredTokenError,
    InvalidTokenError,
    SubjectErasedError,
    UsedTokenError,
)
from app.domain.inventory import load_inventory
from app.http import (
    client_ip,
    inventory,
    mail_files,
    mail_templates,
    rules,
    session,
    settings,
    tokens,
    user_agent,
)
from app.limits import link_limit, public_form_limit
from app.services.privacy_center import access, download, erasure, overview

bp = Blueprint("privacy", __name__)

COOKIE = "cc_privacy"
COOKIE_PATH = "/privacy"


@bp.record_once
def _load_inventory(state: BlueprintSetupState) -> None:
    # Read once at start-up, so a malformed inventory file stops the app from starting.
    state.app.extensions["inventory"] = load_inventory(
        state.app.extensions["settings"].inventory_path
    )


def locale() -> str:
    return str(get_locale() or "en")


def visit() -> access.PrivacyVisit:
    return access.PrivacyVisit(client_ip(), user_agent())


def session_id() -> str | None:
    return request.cookies.get(COOKIE)


def within() -> access.SessionVisit:
    """This request's page, within the privacy session its cookie names."""
    return access.SessionVisit(session_id(), visit(), settings().access_session_idle)


@bp.errorhandler(access.AccessSessionError)
def _no_session(error: access.AccessSessionError) -> ResponseReturnValue:
    access.end_session(session(), session_id())
    response = Response(render_template("privacy/ended.html"), status=401)
    response.delete_cookie(COOKIE, path=COOKIE_PATH)
    return response


@bp.errorhandler(InvalidTokenError)
def _bad_link(error: InvalidTokenError) -> ResponseReturnValue:
    if isinstance(error, UsedTokenError):
        return render_template("privacy/link.html", reason="used"), 410
    if isinstance(error, ExpiredTokenError):
        return render_template("privacy/link.html", reason="expired"), 410
    return render_template("privacy/link.html", reason="invalid"), 400


@bp.errorhandler(SubjectErasedError)
def _erased(error: SubjectErasedError) -> ResponseReturnValue:
    return render_template("privacy/link.html", reason="erased"), 410


@bp.get("/privacy/request/<token>")
@link_limit
def ask(token: str) -> ResponseReturnValue:
    access.subject_for_preference_link(session(), tokens(), token)
    minutes = int(settings().access_link_ttl.total_seconds() // 60)
    return render_template("privacy/request.html", token=token, minutes=minutes)


@bp.post("/privacy/request/<token>")
@public_form_limit  # the service also sends one mail per subject per few minutes
@link_limit
def send(token: str) -> ResponseReturnValue:
    requested = access.request_access(
        session(),
        tokens(),
        mail_templates(),
        token,
        base_url=settings().base_url,
        mail_from=settings().sender,
        locale=locale(),
    )
    if requested.logged_due_at is not None:
        return render_template("privacy/logged.html", due=requested.logged_due_at.date())
    minutes = int(settings().access_link_ttl.total_seconds() // 60)
    return render_template("privacy/sent.html", minutes=minutes)


@bp.get("/access/<token>", endpoint="access")
@link_limit
def access_page(token: str) -> ResponseReturnValue:
    access.check_access_link(session(), tokens(), token)
    return render_template("privacy/access.html", token=token)


@bp.post("/access/<token>")
@link_limit
def open_access(token: str) -> ResponseReturnValue:
    opened = access.open_session(
        session(), tokens(), token, visit(), idle=settings().access_session_idle
    )
    response = redirect(url_for("privacy.overview"), code=303)
    response.set_cookie(
        COOKIE,
        opened.session_id,
        path=COOKIE_PATH,
        httponly=True,
        samesite="Strict",
        secure=settings().base_url.startswith("https://"),
    )
    return response


def _overview(page: access.PrivacyPage) -> dict[str, Any]:
    held = overview.overview(session(), rules(), inventory(), within(), page=page)
    g.timezone = held.timezone  # the page's times in the person's zone, named; else UTC
    refresh()
    return {
        "held": held,
        "zone": held.timezone or "UTC",
        "person_map": data_map(
            [(e.item.key, e.item.label.get(locale()), e.receivers) for e in held.data_map]
        ),
        "names": overview.labels(rules().catalog, locale()),
        "benefits": overview.benefits(rules().catalog, locale()),
        "locale": locale(),
        "idle_minutes": int(settings().access_session_idle.total_seconds() // 60),
    }


@bp.get("/privacy", endpoint="overview")
def overview_page() -> ResponseReturnValue:
    return render_template("privacy/overview.html", **_overview(access.PrivacyPage.OVERVIEW))


@bp.get("/privacy/print")
def printable() -> ResponseReturnValue:
    held = _overview(access.PrivacyPage.PRINT)
    return render_template("privacy/print.html", printable=True, **held)


@bp.get("/privacy/download.json", endpoint="download")
def download_file() -> ResponseReturnValue:
    data = download.download(session(), rules(), inventory(), within(), locale=locale())
    return Response(
        download.dumps(data),
        mimetype="application/json",
        headers={"Content-Disposition": 'attachment; filename="my-data.json"'},
    )


@bp.get("/privacy/delete")
def confirm_delete() -> ResponseReturnValue:
    plan = erasure.erasure_plan(
        session(), inventory(), within(), proof_retention=settings().proof_retention
    )
    return render_template("privacy/delete.html", plan=plan, locale=locale())


@bp.post("/privacy/delete")
def delete() -> ResponseReturnValue:
    report = erasure.erase(
        session(),
        rules(),
        inventory(),
        mail_templates(),
        within(),
        proof_retention=settings().proof_retention,
        mail_from=settings().sender,
        locale=locale(),
        mail_files=mail_files(),
    )
    response = Response(render_template("privacy/deleted.html", report=report, locale=locale()))
    response.delete_cookie(COOKIE, path=COOKIE_PATH)
    return response


@bp.post("/privacy/logout")
def logout() -> ResponseReturnValue:
    access.end_session(session(), session_id())
    response = Response(render_template("privacy/ended.html", is_logout=True))
    response.delete_cookie(COOKIE, path=COOKIE_PATH)
    return response
