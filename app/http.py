"""What every blueprint (api/ and web/) reads from the app and the request, in one place."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
from flask import Response, current_app, g, request
from sqlalchemy.orm import Session

from app.config import Settings
from app.domain.inventory import Inventory
from app.domain.rules import Rules
from app.extensions import db
from app.services.audit.checkpoints import SigningKeys
from app.services.delivery.mail import MailTemplates
from app.services.optin.confirmation import Mailer
from app.services.tokens import Tokens


def rules() -> Rules:
    return current_app.extensions["rules"]  # type: ignore[no-any-return]


def inventory() -> Inventory:
    return current_app.extensions["inventory"]  # type: ignore[no-any-return]


def settings() -> Settings:
    return current_app.extensions["settings"]  # type: ignore[no-any-return]


def signing_keys() -> SigningKeys:
    return current_app.extensions["signing_keys"]  # type: ignore[no-any-return]


def tokens() -> Tokens:
    return current_app.extensions["tokens"]  # type: ignore[no-any-return]


def mail_templates() -> MailTemplates:
    return current_app.extensions["mail_templates"]  # type: ignore[no-any-return]


def mailer() -> Mailer:
    return Mailer(mail_templates(), tokens(), settings().base_url, settings().sender)


def mail_files() -> Path | None:
    """The development outbox folder, when mail goes there as .eml files (no SMTP_HOST)."""
    return None if settings().smtp_host else settings().outbox_dir


def session() -> Session:
    return db.session()


@contextmanager
def read_session() -> Iterator[Session]:
    """A session for a use case that reads with ONE statement (the consent check).

    With DATABASE_READ_URL it reads from the replica (and `read_source()` says so). On
    PostgreSQL it runs in autocommit: one statement is consistent on its own, and no BEGIN and
    ROLLBACK round trips wrap it. SQLite, in process, keeps the request's session.
    """
    replica = current_app.extensions.get("replica_engine")
    if replica is not None:
        g.read_from = "replica"
        with Session(replica) as own:
            yield own
        return
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


def read_source() -> dict[str, str]:
    """`{"read_from": "replica"}` for an answer read from the replica, else nothing."""
    source = g.get("read_from")
    return {"read_from": source} if source else {}


def client_ip() -> str | None:
    """The caller's address: behind TRUSTED_PROXY_HOPS proxies, the one they saw (ProxyFix)."""
    return request.remote_addr


def user_agent() -> str | None:
    agent = request.headers.get("User-Agent")
    return agent[:512] if agent else None


def json_response(data: dict[str, Any]) -> Response:
    """`data` as the app's JSON provider would answer it (sorted keys, compact, a final newline),
    encoded by orjson: a 10,000-result batch answer is several times faster to encode. Only for
    plain data (str, int, bool, None, lists and dicts of them)."""
    body = orjson.dumps(data, option=orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE)
    return Response(body, mimetype="application/json")


def big_json(data: dict[str, Any]) -> Response:
    """A large answer of plain data with its keys in their order, compact, and UTF-8 as it is
    (the bytes of `json.dumps(data, separators=(",", ":"), ensure_ascii=False)`), encoded by
    orjson: a 1,000-change feed page is ten times faster to encode."""
    return Response(orjson.dumps(data), mimetype="application/json")
