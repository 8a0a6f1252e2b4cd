"""The one place that maps failures to HTTP: problem+json (RFC 9457) for the API, pages else."""

from __future__ import annotations

from typing import Any

from authlib.oauth2 import OAuth2Error
from flask import Flask, Response, jsonify, render_template, request
from marshmallow import ValidationError
from sqlalchemy.exc import DBAPIError, OperationalError
from werkzeug.exceptions import HTTPException
from werkzeug.http import HTTP_STATUS_CODES

from app.domain.errors import (
    ConflictError,
    DomainError,
    ExpiredTokenError,
    InvalidIdentifierError,
    InvalidSignatureError,
    InvalidTokenError,
    InvalidWebhookError,
    NotFoundError,
    SubjectErasedError,
    SubjectSuppressedError,
    UnknownTopicError,
    UsedTokenError,
)

STATUS_BY_ERROR: dict[type[DomainError], int] = {
    NotFoundError: 404,
    SubjectErasedError: 410,
    SubjectSuppressedError: 409,
    UnknownTopicError: 422,
    InvalidIdentifierError: 422,
    InvalidWebhookError: 422,
    InvalidSignatureError: 403,
    ConflictError: 409,
    ExpiredTokenError: 410,
    UsedTokenError: 410,
    InvalidTokenError: 400,
    DomainError: 400,
}
API_PREFIXES = ("/v1/", "/oauth/", "/inbound/")
# Problems a client may branch on get their own `type` (RFC 9457 §3.1.1), documented in
# openapi.yaml. A tag URI (RFC 4151) names them without claiming anybody's domain.
SUBJECT_SUPPRESSED = "tag:consent-center,2026:problems/subject-suppressed"
TYPE_BY_ERROR: dict[type[DomainError], str] = {SubjectSuppressedError: SUBJECT_SUPPRESSED}


class AuthError(Exception):
    """A bearer token problem on /v1: 401 (no or bad token) or 403 (missing scope)."""

    def __init__(self, status: int, detail: str, error: str) -> None:
        super().__init__(detail)
        self.status, self.detail, self.error = status, detail, error

    @classmethod
    def from_oauth(cls, error: OAuth2Error) -> AuthError:
        status = 403 if error.error == "insufficient_scope" else 401
        detail = error.description or {
            "missing_authorization": "An Authorization: Bearer token is required.",
            "unsupported_token_type": "Only Bearer tokens are accepted.",
            "invalid_token": "The access token is invalid or has expired.",
            "insufficient_scope": "The access token lacks the scope this call needs.",
        }.get(error.error, "Not authorized.")
        return cls(
            status, detail, "invalid_token" if error.error != "insufficient_scope" else error.error
        )


def problem(
    status: int, detail: str, *, type_uri: str = "about:blank", **extensions: Any
) -> Response:
    body = {
        "type": type_uri,
        "title": HTTP_STATUS_CODES.get(status, "Error"),
        "status": status,
    }
    response = jsonify(body | {"detail": detail} | extensions)
    response.status_code = status
    response.mimetype = "application/problem+json"
    return response


def oauth_error(status: int, error: str, description: str) -> Response:
    """An RFC 6749 §5.2 error body, as OAuth clients read from the token endpoint."""
    response = jsonify({"error": error, "error_description": description})
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    return response


def is_api_request() -> bool:
    return request.path.startswith(API_PREFIXES) or request.path == "/v1"


def status_of(error: DomainError) -> int:
    for cls in type(error).__mro__:
        if cls in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[cls]
    return 400


def _respond(
    status: int, detail: str, *, type_uri: str = "about:blank", **extensions: Any
) -> Response | tuple[str, int]:
    if is_api_request():
        return problem(status, detail, type_uri=type_uri, **extensions)
    title = HTTP_STATUS_CODES.get(status, "Error")
    return render_template("error.html", status=status, title=title, detail=detail), status


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(DomainError)
    def domain_error(error: DomainError) -> Any:
        _rollback()
        extra = {"errors": error.errors} if error.errors else {}
        type_uri = TYPE_BY_ERROR.get(type(error), "about:blank")
        return _respond(status_of(error), error.detail, type_uri=type_uri, **extra)

    @app.errorhandler(ValidationError)
    def validation_error(error: ValidationError) -> Any:
        messages = (
            error.messages if isinstance(error.messages, dict) else {"_schema": error.messages}
        )
        return _respond(422, "The request is not valid.", errors=messages)

    @app.errorhandler(AuthError)
    def auth_error(error: AuthError) -> Any:
        response = problem(error.status, error.detail)
        challenge = f'Bearer realm="consent-center", error="{error.error}"'
        if (
            error.status == 401
            and error.error == "invalid_token"
            and "Authorization" not in request.headers
        ):
            challenge = 'Bearer realm="consent-center"'
        response.headers["WWW-Authenticate"] = challenge
        return response

    @app.errorhandler(OperationalError)
    @app.errorhandler(DBAPIError)
    def database_unavailable(error: DBAPIError) -> Any:
        _rollback()
        if isinstance(error, OperationalError) or error.connection_invalidated:
            app.logger.warning("database unavailable: %s", error.__class__.__name__)
            response = _respond(503, "The database is unavailable; try again shortly.")
            if isinstance(response, Response):
                response.headers["Retry-After"] = "5"
            return response
        raise error

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Any:
        status = error.code or 500
        detail = error.description or HTTP_STATUS_CODES.get(status, "Error")
        kept = {k: v for k, v in error.get_headers() if k in ("Allow", "Retry-After")}
        if request.path == "/oauth/token" and status == 429:
            # OAuth clients read RFC 6749 §5.2 bodies from the token endpoint, 429 included.
            limited = oauth_error(status, "temporarily_unavailable", detail)
            limited.headers.update(kept)
            return limited
        response = _respond(status, detail)
        if isinstance(response, Response):
            response.headers.update(kept)
            return response
        return response[0], status, kept


def _rollback() -> None:
    from app.extensions import db

    try:
        db.session.rollback()
    except Exception:
        db.session.remove()
