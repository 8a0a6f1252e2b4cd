"""Notice versions: the exact wording a person was shown, published once and never changed."""

from __future__ import annotations

import hashlib
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

import yaml
from sqlalchemy import case, select
from sqlalchemy.orm import Session

from app.domain.errors import ConflictError, NotFoundError
from app.domain.vocabulary import Action, Method
from app.models import ChainHead, NoticeVersion, utcnow
from app.services.consent import ledger

CONSENT_NOTICE = "marketing-consent"


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def publish(
    session: Session,
    *,
    key: str,
    version: str,
    locale: str,
    title: str,
    text: str,
    actor: str = "system",
    now: datetime | None = None,
) -> NoticeVersion:
    """Publish a version; the same text again is a no-op, a different text a conflict."""
    head = ledger.lock(session)
    notice = _publish(
        session, head, Wording(key, version, locale, title, text), actor, now or utcnow()
    )
    session.commit()
    return notice


def publish_file(session: Session, path: Path) -> int:
    """Publish every notice in a notices YAML file (the shipped defaults on `db upgrade`)."""
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    head = ledger.lock(session)
    count = 0
    for item in raw.get("notices", []):
        wording = Wording(
            item["key"], str(item["version"]), item["locale"], item["title"], item["text"]
        )
        # Each its own time: a later version in the file is the newer one (see `current`).
        _publish(session, head, wording, "system", utcnow())
        count += 1
    session.commit()
    return count


class Wording(NamedTuple):
    key: str
    version: str
    locale: str
    title: str
    text: str


def _publish(
    session: Session, head: ChainHead, wording: Wording, actor: str, now: datetime
) -> NoticeVersion:
    key, version, locale, title, text = wording
    existing = session.scalar(
        select(NoticeVersion).where(
            NoticeVersion.key == key,
            NoticeVersion.version == version,
            NoticeVersion.locale == locale,
        )
    )
    digest = sha256(text)
    if existing is not None:
        if existing.sha256 != digest or existing.title != title:
            raise ConflictError(
                f"Notice {key} {version} ({locale}) exists with other wording; use a new version."
            )
        return existing
    notice = NoticeVersion(
        key=key,
        version=version,
        locale=locale,
        title=title,
        text=text,
        sha256=digest,
        published_at=now,
    )
    session.add(notice)
    ledger.append(
        session,
        head,
        ledger.Act(actor=actor, method=Method.ADMIN if actor != "system" else Method.SYSTEM),
        [
            ledger.Draft(
                Action.NOTICE_PUBLISHED,
                details={"key": key, "version": version, "locale": locale, "sha256": digest},
            )
        ],
        now=now,
    )
    return notice


def record(row: NoticeVersion) -> dict[str, Any]:
    """A published notice as data: its exact wording, that wording's hash, when it was published."""
    return {
        "key": row.key,
        "version": row.version,
        "locale": row.locale,
        "title": row.title,
        "text": row.text,
        "sha256": row.sha256,
        "published_at": row.published_at,
    }


def resolve(
    session: Session, version: str | None, locale: str | None, key: str = CONSENT_NOTICE
) -> NoticeVersion | None:
    """The stored notice an event's notice_version points to: best match by key, then locale."""
    if not version:
        return None
    return session.scalar(
        select(NoticeVersion)
        .where(NoticeVersion.version == version)
        .order_by(
            case((NoticeVersion.key == key, 0), else_=1),
            case(
                (NoticeVersion.locale == (locale or "en"), 0),
                (NoticeVersion.locale == "en", 1),
                else_=2,
            ),
        )
        .limit(1)
    )


def current(session: Session, key: str, locale: str | None) -> NoticeVersion:
    """The newest version published in the locale, else the newest in English.

    Locale before time: a version published only in Italian must not replace the English text.
    """
    wanted = locale or "en"
    found = session.scalar(
        select(NoticeVersion)
        .where(NoticeVersion.key == key, NoticeVersion.locale.in_({wanted, "en"}))
        .order_by(
            case((NoticeVersion.locale == wanted, 0), else_=1),
            NoticeVersion.published_at.desc(),
            NoticeVersion.id.desc(),
        )
        .limit(1)
    )
    if found is None:
        raise NotFoundError(f"No notice {key} is published in {wanted} or en.")
    return found


def listing(session: Session) -> list[NoticeVersion]:
    """Every version, per key and locale, oldest first."""
    return list(
        session.scalars(
            select(NoticeVersion).order_by(
                NoticeVersion.key,
                NoticeVersion.locale,
                NoticeVersion.published_at,
                NoticeVersion.id,
            )
        )
    )
