"""Security headers on every response, secure cookies over HTTPS, and redacted logs."""

from __future__ import annotations

from flask import Flask, Response, jsonify, request
from marshmallow import ValidationError

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
        # The one place that says `no-store`. Pages may show personal data, so every answer
        # but a static file's says it, unless a view that knows better set its own header.
        is_default = "Cache-Control" not in response.headers
        if must_not_be_stored(request.path) or (
            is_default and not request.path.startswith(CACHEABLE_PREFIXES)
        ):
            response.headers["Cache-Control"] = "no-store"
        return response

    @app.before_request
    def refuse_nul_characters() -> Response | None:
        """U+0000 in a query or form field: a 422 here rather than a database error later."""
        sources = [request.args]
        if request.mimetype in FORM_TYPES:
            request.get_data(cache=True)  # form parsing then reads this copy: views still can
            sources.append(request.form)
        bad = sorted(
            {
                name.replace("\x00", "\\0")
                for fields in sources
                for name, values in fields.lists()
                if "\x00" in name or any("\x00" in v for v in values)
            }
        )
        if not bad:
            return None
        message = "Must not contain a NUL character."
        if request.path.startswith("/oauth/"):
            # The token endpoint answers as OAuth clients expect (RFC 6749 §5.2).
            answer = jsonify(error="invalid_request", error_description=message)
            answer.status_code = 400
            return answer
        raise ValidationError({name: [message] for name in bad})

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
