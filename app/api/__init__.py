"""JSON blueprints for /v1 and the small helpers every one of them shares."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from flask import current_app, request
from marshmallow import Schema
from sqlalchemy.orm import Session
from werkzeug.exceptions import BadRequest, UnsupportedMediaType

from app.auth import current_client_id
from app.config import Settings
from app.domain.rules import Rules
from app.domain.vocabulary import Method
from app.extensions import db
from app.services.ledger import Act


def rules() -> Rules:
    return current_app.extensions["rules"]  # type: ignore[no-any-return]


def settings() -> Settings:
    return current_app.extensions["settings"]  # type: ignore[no-any-return]


def session() -> Session:
    return db.session()


@contextmanager
def read_session() -> Iterator[Session]:
    """A session for a use case that reads with ONE statement (the consent check).

    On PostgreSQL it runs in autocommit: one statement is consistent on its own, and no
    BEGIN and ROLLBACK round trips wrap it. SQLite, in process, keeps the request's session.
    """
    engine = db.engine
    if engine.dialect.name != "postgresql":
        yield db.session()
        return
    reader = current_app.extensions.get("read_engine")
    if reader is None:
        reader = current_app.extensions["read_engine"] = engine.execution_options(
            isolation_level="AUTOCOMMIT"
        )
    with Session(reader) as own:
        yield own


def streamed(produce: Callable[[Session], Iterator[str]]) -> Iterator[str]:
    """Chunks for a streamed response, read through a session the stream owns and closes.

    The request's scoped session is torn down when the view returns, before the body is sent.
    """
    engine = db.engine  # resolved now, while the app context is still there

    def chunks() -> Iterator[str]:
        with Session(engine) as own:
            yield from produce(own)

    return chunks()


def json_body(*, optional: bool = False) -> Any:
    """The request's JSON: 415 for another media type, 400 for a body that is not JSON."""
    if optional and not request.get_data(cache=True):
        return None
    if not request.is_json:
        raise UnsupportedMediaType("Send the body as application/json.")
    try:
        return request.get_json()
    except RecursionError:
        raise BadRequest("The JSON body is nested too deeply.") from None


def load_body(schema: Schema, *, optional: bool = False) -> dict[str, Any]:
    return schema.load(json_body(optional=optional))  # type: ignore[no-any-return]


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
