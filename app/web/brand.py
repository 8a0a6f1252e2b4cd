"""The brand on every page: its stylesheet and logo, the privacy notice page, and the names
every template may use (brand, logo_url, contact, privacy_notice_url)."""

from __future__ import annotations

import mimetypes
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, abort, render_template, send_file, url_for
from flask.typing import ResponseReturnValue
from flask_babel import get_locale

from app.domain.errors import NotFoundError
from app.http import rules, session, settings
from app.services.consent import notices

bp = Blueprint("brand", __name__)

PRIVACY_NOTICE = "privacy-notice"


@bp.app_context_processor
def brand_context() -> dict[str, Any]:
    brand = settings().brand
    return {
        "brand": brand,
        "contact": rules().catalog.controller.get("contact"),
        "logo_url": (
            url_for("brand.logo")
            if brand.logo_path
            else url_for("static", filename="brand/logo.svg")
        ),
        "privacy_notice_url": brand.privacy_notice_url or url_for("brand.privacy_notice"),
    }


@bp.app_template_filter("country_name")
def country_name(code: str | None) -> str:
    """An ISO 3166 code as the country's name in the page's language (CLDR, via Babel)."""
    if not code:
        return ""
    return str(get_locale().territories.get(code.upper(), code)) if get_locale() else code


@bp.get("/brand.css")
def stylesheet() -> ResponseReturnValue:
    response = Response(settings().brand.stylesheet(), mimetype="text/css")
    response.headers["Cache-Control"] = "public, max-age=3600"
    return response


@bp.get("/brand/logo")
def logo() -> ResponseReturnValue:
    path = settings().brand.logo_path
    if not path or not Path(path).is_file():
        abort(404)
    mimetype = mimetypes.guess_type(path)[0] or "application/octet-stream"
    return send_file(Path(path).resolve(), mimetype=mimetype, max_age=3600)


@bp.get("/privacy-notice")
def privacy_notice() -> ResponseReturnValue:
    """The published privacy notice (GDPR Art. 13) in the page's language, as published."""
    try:
        notice = notices.current(session(), PRIVACY_NOTICE, str(get_locale() or "en"))
    except NotFoundError:
        abort(404)
    return render_template("privacy_notice.html", notice=notice)
