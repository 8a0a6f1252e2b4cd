"""An imported row: its fields, read from NDJSON or CSV, and what applying it would do.

Pure: no database. `decide` is the whole "never lose a later choice" rule.
"""

from __future__ import annotations

import csv
import ipaddress
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from app.domain.text import is_utf8
from app.domain.vocabulary import IdentifierKind, ImportMethod, Status

IDENTIFIER_FIELDS = (IdentifierKind.EMAIL, IdentifierKind.PHONE, IdentifierKind.EXTERNAL_ID)
FIELDS = frozenset(
    {
        *IDENTIFIER_FIELDS,
        "channel",
        "category",
        "purpose",
        "status",
        "consented_at",
        "source",
        "method",
        "notice_version",
        "ip",
        "user_agent",
        "locale",
        "country",
    }
)
LIMITS = {"source": 200, "user_agent": 512, "notice_version": 64, "external_id": 200}


class RowError(ValueError):
    """A line that cannot be applied; its message is the per-line error shown to the caller."""


@dataclass(frozen=True)
class Row:
    identifiers: tuple[tuple[IdentifierKind, str], ...]
    channel: str
    category: str
    purpose: str
    status: Status
    method: ImportMethod
    consented_at: datetime | None = None
    source: str | None = None
    notice_version: str | None = None
    ip: str | None = None
    user_agent: str | None = None
    locale: str | None = None
    country: str | None = None


def from_ndjson(line: str) -> Row:
    try:
        value = json.loads(line)
    except ValueError:
        raise RowError("Not a JSON object.") from None
    if not isinstance(value, dict):
        raise RowError("Not a JSON object.")
    return from_mapping(value)


def from_csv(header: list[str], line: str) -> Row:
    try:
        (cells,) = list(csv.reader([line]))
    except (csv.Error, ValueError):
        raise RowError("Not a CSV row.") from None
    if len(cells) != len(header):
        raise RowError(f"Expected {len(header)} columns, found {len(cells)}.")
    return from_mapping({k: v for k, v in zip(header, cells, strict=True) if v != ""})


def csv_header(line: str) -> list[str]:
    try:
        (names,) = list(csv.reader([line]))
    except (csv.Error, ValueError):
        raise RowError("The header row is not CSV.") from None
    unknown = sorted(set(names) - FIELDS)
    if unknown:
        raise RowError(f"Unknown columns: {', '.join(unknown)}.")
    return [name.strip() for name in names]


def from_mapping(raw: Mapping[str, Any]) -> Row:
    unknown = sorted(set(raw) - FIELDS)
    if unknown:
        raise RowError(f"Unknown fields: {', '.join(unknown)}.")
    for name, value in raw.items():
        if value is not None and not isinstance(value, str):
            raise RowError(f"{name}: must be a string.")
        if value and ("\x00" in value or len(value) > LIMITS.get(name, 320)):
            raise RowError(f"{name}: too long or holds a NUL character.")
        if value and not value.isascii() and not is_utf8(value):
            raise RowError(f"{name}: holds a lone surrogate (\\ud800…).")
    identifiers = tuple((kind, raw[kind]) for kind in IDENTIFIER_FIELDS if raw.get(kind))
    if not identifiers:
        raise RowError("Give at least one of email, phone or external_id.")
    purpose = raw.get("purpose") or ""
    channel, category = raw.get("channel") or "", raw.get("category") or ""
    if purpose and (channel or category):
        raise RowError("A row names a purpose, or a channel and category, not both.")
    if not purpose and not channel:
        raise RowError("channel: missing (or give purpose).")
    try:
        status = Status(raw.get("status") or "")
        if status is Status.PENDING:
            raise ValueError
    except ValueError:
        raise RowError("status: must be granted or withdrawn.") from None
    try:
        method = ImportMethod(raw.get("method") or ImportMethod.IMPORT)
    except ValueError:
        names = ", ".join(ImportMethod)
        raise RowError(f"method: must be one of {names}.") from None
    return Row(
        identifiers=identifiers,
        channel=channel,
        category=category,
        purpose=purpose,
        status=status,
        method=method,
        consented_at=_instant(raw.get("consented_at")),
        source=raw.get("source") or None,
        notice_version=raw.get("notice_version") or None,
        ip=_ip(raw.get("ip")),
        user_agent=raw.get("user_agent") or None,
        locale=raw.get("locale") or None,
        country=(raw.get("country") or "").upper() or None,
    )


def _instant(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise RowError("consented_at: not an RFC 3339 time.") from None
    if moment.tzinfo is None:
        raise RowError("consented_at: needs a UTC offset.")
    moment = moment.astimezone(UTC)
    if not 1970 <= moment.year <= 9998:
        raise RowError("consented_at: must be between 1970 and 9998.")
    return moment


def _ip(value: str | None) -> str | None:
    if not value:
        return None
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        raise RowError("ip: not an IP address.") from None


class Outcome(StrEnum):
    APPLY = "apply"
    RECORD = "record"  # kept as a record, never as consent
    UNCHANGED = "unchanged"


@dataclass(frozen=True)
class Held:
    """A stored standing as the import compares it: its status and when it was chosen."""

    status: Status
    chosen_at: datetime


def target_status(row: Row, *, needs_double_opt_in: bool) -> Status | None:
    """What the row would store; None for a row that may only be recorded."""
    if row.status is Status.WITHDRAWN:
        return Status.WITHDRAWN
    if row.method is ImportMethod.PURCHASED_LIST:
        return None  # a bought list is never anyone's consent
    if needs_double_opt_in and row.method is not ImportMethod.DOUBLE_OPT_IN:
        return Status.PENDING  # no proof of confirmation: the address must confirm itself
    return Status.GRANTED


def decide(
    row: Row,
    target: Status | None,
    *,
    stored: Held | None,
    channel: Held | None,
    all_marketing: Held | None,
    is_suppressed: bool,
) -> Outcome:
    """Apply only what is newer than every choice it would override; anything else stands."""
    if target is None:
        return Outcome.RECORD
    if is_suppressed and target is not Status.WITHDRAWN:
        return Outcome.UNCHANGED
    if target is not Status.WITHDRAWN and not row.purpose:
        if all_marketing is not None and all_marketing.status is Status.WITHDRAWN:
            return Outcome.UNCHANGED
        if (
            channel is not None
            and channel.status is Status.WITHDRAWN
            and (row.consented_at is None or row.consented_at <= channel.chosen_at)
        ):
            return Outcome.UNCHANGED
    if stored is None:
        return Outcome.APPLY
    if row.consented_at is None or row.consented_at <= stored.chosen_at:
        return Outcome.UNCHANGED  # older than (or as old as) what is stored
    if stored.status is target:
        return Outcome.UNCHANGED
    return Outcome.APPLY
