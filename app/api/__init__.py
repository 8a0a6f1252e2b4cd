"""JSON blueprints for /v1 and the small helpers every one of them shares."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from flask import current_app, request
from marshmallow import Schema
from sqlalchemy.orm import Session
from werkzeug.exceptions import BadRequest, UnsupportedMediaType

from app.auth import current_client_id
from app.domain.text import is_utf8
from app.domain.vocabulary import Method
from app.extensions import db
from app.services.consent.ledger import Act


def streamed(
    produce: Callable[[Session], Iterator[str]], *, replica: bool = False
) -> Iterator[str]:
    """Chunks for a streamed response, read through a session the stream owns and closes;
    with `replica`, from the read replica when there is one (DATABASE_READ_URL).

    The request's scoped session is torn down when the view returns, before the body is sent.
    The database is reached and the first chunk made before the view returns, so an outage is
    a 503 with Retry-After (app/errors), not a 500 inside a body already begun.
    """
    # Resolved now, while the app context is still there.
    engine = (replica and current_app.extensions.get("replica_engine")) or db.engine
    own = Session(engine)
    try:
        own.connection()
        chunks = produce(own)
        first = next(chunks, None)
    except BaseException:
        own.close()
        raise

    def rest() -> Iterator[str]:
        try:
            if first is not None:
                yield first
                yield from chunks
        finally:
            own.close()

    return rest()


def json_body(*, optional: bool = False) -> Any:
    """The request's JSON: 415 for another media type, 400 for a body that is not JSON."""
    if optional and not request.get_data(cache=True):
        return None
    if not request.is_json:
        raise UnsupportedMediaType("Send the body as application/json.")
    try:
        body = request.get_json()
    except RecursionError:
        raise BadRequest("The JSON body is nested too deeply.") from None
    if has_unstorable_text(body):
        raise BadRequest(
            "The JSON body holds a NUL character or a lone surrogate (\\u0000, \\ud800…), "
            "which no field accepts."
        )
    return body


def has_unstorable_text(value: Any) -> bool:
    """True if a key or string in parsed JSON holds U+0000 (PostgreSQL refuses it) or a lone
    surrogate (JSON's \\uXXXX escapes allow one; UTF-8 cannot encode it)."""
    pending = [value]
    while pending:  # a loop, not recursion: the body may be nested as deep as the parser allows
        item = pending.pop()
        if isinstance(item, str):
            if "\x00" in item or (not item.isascii() and not is_utf8(item)):
                return True
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return False


def load_body(schema: Schema, *, optional: bool = False) -> dict[str, Any]:
    """The body through its schema; an optional body left out loads as an empty object."""
    body = json_body(optional=optional)
    return schema.load({} if body is None else body)  # type: ignore[no-any-return]


def dump(schema: Schema, value: Any) -> dict[str, Any]:
    """A response body through its schema (marshmallow's dump is untyped)."""
    return schema.dump(value)  # type: ignore[no-any-return]


def load_args(schema: Schema) -> dict[str, Any]:
    return schema.load(request.args.to_dict())  # type: ignore[no-any-return]


def api_act(body: dict[str, Any], method: Method = Method.API) -> Act:
    """The proof of an API call: the client is the actor; evidence is what the client passed on."""
    return Act(
        actor=f"client:{current_client_id()}",
        method=method,
        source=body.get("source"),
        capture_point=f"api:{current_client_id()}",
        locale=body.get("locale"),
        notice_version=body.get("notice_version"),
        ip=str(body["ip"]) if body.get("ip") else None,
        user_agent=body.get("user_agent"),
    )
