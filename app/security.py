"""Security headers on every response, secure cookies over HTTPS, and redacted logs."""

from __future__ import annotations

import itertools

from flask import Flask, Response, request
from werkzeug.exceptions import BadRequest

from app.config import Settings
from app.logs import TOKEN_PREFIXES, install_redaction, redact

# No 'unsafe-inline' anywhere: pages load their scripts and styles from /static only.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    )
)
PERMISSIONS_POLICY = ", ".join(
    f"{feature}=()"
    for feature in (
        "accelerometer",
        "browsing-topics",
        "camera",
        "geolocation",
        "gyroscope",
        "magnetometer",
        "microphone",
        "payment",
        "usb",
    )
)
HSTS = "max-age=31536000"
ALWAYS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",  # frame-ancestors for browsers that predate CSP 2
    "Referrer-Policy": "no-referrer",  # a page at /confirm/<token> must not leak its URL
    "Permissions-Policy": PERMISSIONS_POLICY,
    "Cross-Origin-Opener-Policy": "same-origin",
}
# Never stored by a browser or a proxy: API answers and pages reached by a token link.
NO_STORE_PREFIXES = ("/v1/", "/oauth/", *(f"/{p}/" for p in TOKEN_PREFIXES))
CACHEABLE_PREFIXES = ("/static/",)
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def init_security(app: Flask, settings: Settings) -> None:
    is_https_site = settings.base_url.startswith("https://")

    @app.after_request
    def security_headers(response: Response) -> Response:
        for name, value in ALWAYS.items():
            response.headers.setdefault(name, value)
        is_https = is_https_site or request.is_secure
        if is_https:
            response.headers.setdefault("Strict-Transport-Security", HSTS)
            _secure_cookies(response)
        if must_not_be_stored(request.path):
            response.headers["Cache-Control"] = "no-store"
        elif "Cache-Control" not in response.headers and not request.path.startswith(
            CACHEABLE_PREFIXES
        ):
            # Pages may show personal data; a view that knows better sets its own header.
            response.headers["Cache-Control"] = "no-store"
        return response

    @app.before_request
    def refuse_nul_characters() -> None:
        """U+0000 in a query or a form field: 400 here rather than a database error later."""
        fields = [*request.args.keys(), *itertools.chain(*request.args.listvalues())]
        if request.mimetype in FORM_TYPES:
            request.get_data(cache=True)  # form parsing then reads this copy: views still can
            fields += [*request.form.keys(), *itertools.chain(*request.form.listvalues())]
        if any("\x00" in value for value in fields):
            raise BadRequest("The request holds a NUL character, which no field accepts.")

    install_redaction(app.logger)


def must_not_be_stored(path: str) -> bool:
    """/v1, /oauth, the token-link pages, and any path holding something token-like."""
    return path.startswith(NO_STORE_PREFIXES) or redact(path) != path


def _secure_cookies(response: Response) -> None:
    cookies = response.headers.getlist("Set-Cookie")
    if not cookies:
        return
    response.headers.remove("Set-Cookie")
    for cookie in cookies:
        has_secure = any(p.strip().lower() == "secure" for p in cookie.split(";"))
        response.headers.add("Set-Cookie", cookie if has_secure else f"{cookie}; Secure")
