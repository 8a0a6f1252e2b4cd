"""What every blueprint (api/ and web/) reads from the app and the request, in one place."""

from __future__ import annotations

from flask import current_app, request
from sqlalchemy.orm import Session

from app.config import Settings
from app.domain.rules import Rules
from app.extensions import db
from app.services.links import Links
from app.services.mail import MailTemplates
from app.services.signups import Mailer


def rules() -> Rules:
    return current_app.extensions["rules"]  # type: ignore[no-any-return]


def settings() -> Settings:
    return current_app.extensions["settings"]  # type: ignore[no-any-return]


def links() -> Links:
    return current_app.extensions["links"]  # type: ignore[no-any-return]


def mail_templates() -> MailTemplates:
    return current_app.extensions["mail_templates"]  # type: ignore[no-any-return]


def mailer() -> Mailer:
    return Mailer(mail_templates(), links(), settings().base_url, settings().mail_from)


def session() -> Session:
    return db.session()


def client_ip() -> str | None:
    """The caller's address (gunicorn's forwarded_allow_ips decides whom to believe)."""
    return request.remote_addr


def user_agent() -> str | None:
    agent = request.headers.get("User-Agent")
    return agent[:512] if agent else None
