"""The privacy center's download: the machine-readable copy of everything held on the person."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from enum import Enum
from typing import Any

from sqlalchemy.orm import Session

from app.domain import chain
from app.domain.inventory import Inventory, Item
from app.domain.rules import Rules
from app.models import utcnow
from app.services.consent import derived, notices, subjects
from app.services.privacy_center import rights
from app.services.privacy_center.access import PrivacyPage, SessionVisit, log_visit, resume
from app.services.privacy_center.overview import gather

EXPORT_SCHEMA = "https://consent-center.example/schemas/privacy-export/1"


def download(
    session: Session,
    rules: Rules,
    inventory: Inventory,
    within: SessionVisit,
    *,
    locale: str,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The machine-readable copy (Art. 15(3), Art. 20), as JSON-ready data.

    The shape of the API's subject export, plus the inventory, the derived data and the access
    log; app/data/privacy-export.schema.json documents it.
    """
    now = now or utcnow()
    access = resume(session, within, now=now)
    log_visit(session, access.subject_id, PrivacyPage.DOWNLOAD, within.visit, now)
    rights.add(
        session, access.subject_id, "download", received_at=now, answered_at=now, channel="web"
    )
    held = gather(session, rules, inventory, access, now)
    notices_shown = {(n.key, n.version, n.locale): n for e in held.timeline if (n := e.notice)}
    data = {
        "$schema": EXPORT_SCHEMA,
        "generated_at": now,
        "language": locale,
        "controller": dict(rules.catalog.controller),
        "subject_id": held.subject.id,
        "created_at": held.subject.created_at,
        "locale": held.subject.locale,
        "country": held.subject.country,
        "identifiers": [subjects.identifier_data(i) for i in held.identifiers],
        "preferences": held.preferences.as_data(),
        "events": [
            event.record()
            | {"evidence": subjects.evidence_data(held.evidence.get(event.evidence_hash))}
            for event in held.events
        ],
        "notices": [notices.record(n) for _, n in sorted(notices_shown.items())],
        "rights_requests": [subjects.rights_request_data(r) for r in reversed(held.requests)],
        "derived": [
            {"label": d.item.label.get(locale)} | derived.data(d.row) for d in held.derived
        ],
        "access_log": [
            {"occurred_at": r.occurred_at, "page": r.page, "ip": r.ip, "user_agent": r.user_agent}
            for r in held.access_log
        ],
        "data_map": [
            {
                "key": e.item.key,
                "label": e.item.label.get(locale),
                "collected_at": e.collected_at,
                "source": e.source,
                "capture_point": e.capture_point,
                "method": e.method,
                "legal_basis": e.legal_basis,
                "notice": (
                    {"key": e.notice.key, "version": e.notice.version, "locale": e.notice.locale}
                    if e.notice
                    else None
                ),
                "receivers": list(e.receivers),
                "retention": e.item.retention.get(locale),
            }
            for e in held.data_map
        ],
        "inventory": [_item_data(item, locale) for item in inventory.items],
        "security_measures": list(inventory.measures(locale)),
    }
    session.commit()
    return _plain(data)  # type: ignore[no-any-return]


def _item_data(item: Item, locale: str) -> dict[str, Any]:
    return {
        "key": item.key,
        "label": item.label.get(locale),
        "derived": item.is_derived,
        "legal_basis": str(item.legal_basis),
        "purpose": item.purpose.get(locale),
        "retention": item.retention.get(locale),
        "recipients": list(item.recipients),
        "benefit": item.benefit.get(locale),
    }


def _plain(value: Any) -> Any:
    """Datetimes as RFC 3339 UTC strings, enums as their values, all the way down."""
    if isinstance(value, datetime):
        return chain.format_time(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def dumps(data: Mapping[str, Any]) -> str:
    return json.dumps(data, ensure_ascii=False, indent=2)
