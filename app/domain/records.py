"""The records the proof rests on besides the chain: notice texts, session evidence and the
current state, checked one by one; each failure names what and where.

Pure: the live verifier feeds it rows from the database, the offline one a package's records.
Checkpoint signatures are checked by app.domain.proof.check_checkpoint.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from app.domain import chain

NOTICE_PUBLISHED = "notice_published"
ERASE = "erase"
StateKey = tuple[str, str, str, str]  # subject_id, channel, category, purpose ('' = none)


@dataclass(frozen=True)
class Finding:
    """What is wrong and where: the record's kind, the first bad seq and the record itself."""

    record: str  # event | notice | evidence | checkpoint | state | catalog | key | package
    problem: str
    seq: int | None = None
    notice: Mapping[str, str] | None = None
    evidence_hash: str | None = None
    state: Mapping[str, str] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "record": self.record,
            "notice": dict(self.notice) if self.notice else None,
            "evidence_hash": self.evidence_hash,
            "state": dict(self.state) if self.state else None,
        }


NO_FINDING = {"record": None, "notice": None, "evidence_hash": None, "state": None}


class BadRecord(Exception):  # noqa: N818 - reads as a finding, not a crash
    def __init__(self, finding: Finding) -> None:
        super().__init__(finding.problem)
        self.finding = finding


@dataclass
class Counts:
    events: int = 0
    notices: int = 0
    evidence: int = 0
    checkpoints: int = 0
    states: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


# --- session evidence --------------------------------------------------------------------------


def evidence_time(moment: datetime | str) -> str:
    """The one spelling of an evidence row's time inside its hash (Python's isoformat, as the
    first rows were hashed); the wire spells it like every other time (RFC 3339 with Z), and
    that spelling is read back here before hashing."""
    if isinstance(moment, datetime):
        return moment.astimezone(UTC).isoformat()
    try:
        return datetime.fromisoformat(moment).astimezone(UTC).isoformat()
    except ValueError:
        return moment  # not a time at all: it cannot hash to what was recorded


def evidence_digest(row: Mapping[str, Any]) -> str:
    """sha256 over the row's canonical JSON: nonce, ip, user agent, country, details, time."""
    created_at = row.get("created_at")
    body = {
        "nonce": row.get("nonce"),
        "ip": row.get("ip"),
        "user_agent": row.get("user_agent"),
        "country": row.get("country"),
        "details": row.get("details"),
        "created_at": evidence_time(created_at) if created_at else created_at,
    }
    return hashlib.sha256(chain.canonical_utf8(body)).hexdigest()


def check_evidence(seq: int, named: str, row: Mapping[str, Any]) -> None:
    """The evidence row an event names by hash must still hash to that name."""
    if evidence_digest(row) != named:
        raise BadRecord(
            Finding(
                "evidence",
                f"the evidence of event {seq} (IP, user agent, ...) was changed: it no longer "
                "hashes to the evidence_hash the event holds",
                seq,
                evidence_hash=named,
            )
        )


# --- notices -----------------------------------------------------------------------------------


def notice_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _named(key: Any, version: Any, locale: Any) -> dict[str, str]:
    return {"key": str(key), "version": str(version), "locale": str(locale)}


@dataclass
class Notices:
    """The stored notice texts, by version; checks the events that cite or publish them."""

    by_version: dict[str, dict[tuple[str, str], str]] = field(default_factory=dict)
    vouched: set[tuple[str, str, str]] = field(default_factory=set)

    def add(self, notice: Mapping[str, Any]) -> None:
        named = _named(notice.get("key"), notice.get("version"), notice.get("locale"))
        if notice_sha256(str(notice.get("text") or "")) != notice.get("sha256"):
            raise BadRecord(
                Finding(
                    "notice",
                    f"the text of notice {named['key']} {named['version']} ({named['locale']}) "
                    "does not match its sha256",
                    notice=named,
                )
            )
        versions = self.by_version.setdefault(named["version"], {})
        versions[(named["key"], named["locale"])] = str(notice["sha256"])

    def __len__(self) -> int:
        return sum(len(v) for v in self.by_version.values())

    def cite(self, event: Mapping[str, Any]) -> None:
        """An event's notice_version must point to a stored text with the sha256 it carries."""
        version = event.get("notice_version")
        if not version:
            return
        seq, cited = int(event["seq"]), event.get("notice_sha256")
        stored = self.by_version.get(str(version), {})
        if cited is None:
            raise BadRecord(
                Finding(
                    "event",
                    f"event {seq} cites notice version {version}, which was never published",
                    seq,
                    notice=_named(None, version, event.get("locale")),
                )
            )
        for (key, locale), sha in stored.items():
            if sha == cited:
                self.vouched.add((key, str(version), locale))
                return
        near = _nearest(stored, event.get("locale"))
        raise BadRecord(
            Finding(
                "notice",
                f"event {seq} was shown notice version {version} with sha256 {cited}; "
                + (
                    f"the stored text of {near[0]} {version} ({near[1]}) is another one"
                    if near
                    else "no stored text of that version is left"
                ),
                seq,
                notice=_named(near[0] if near else None, version, near[1] if near else None),
            )
        )

    def published(self, event: Mapping[str, Any], details: Mapping[str, Any]) -> None:
        """A notice_published event names the text's sha256 as it was published."""
        named = _named(details.get("key"), details.get("version"), details.get("locale"))
        stored = self.by_version.get(named["version"], {}).get((named["key"], named["locale"]))
        if stored is None:
            return  # a filtered package holds only the notices its events cite
        if stored != details.get("sha256"):
            seq = int(event["seq"])
            raise BadRecord(
                Finding(
                    "notice",
                    f"notice {named['key']} {named['version']} ({named['locale']}) is not the "
                    f"text event {seq} published",
                    seq,
                    notice=named,
                )
            )
        self.vouched.add((named["key"], named["version"], named["locale"]))

    def unvouched(self) -> Finding | None:
        """A stored notice no event published or cites: its text cannot be trusted."""
        for version, texts in self.by_version.items():
            for key, locale in texts:
                if (key, version, locale) not in self.vouched:
                    named = _named(key, version, locale)
                    return Finding(
                        "notice",
                        f"notice {key} {version} ({locale}) was not published through the "
                        "trail: no event publishes or cites this text",
                        notice=named,
                    )
        return None


def _nearest(stored: Mapping[tuple[str, str], str], locale: Any) -> tuple[str, str] | None:
    for key, found in sorted(stored):
        if found == locale:
            return key, found
    return min(stored) if stored else None


# --- current state -----------------------------------------------------------------------------


def state_key(event: Mapping[str, Any]) -> StateKey | None:
    """The consent_state row an event sets (as ledger.append writes it), or None."""
    if not event.get("subject_id") or not event.get("status"):
        return None
    return (
        str(event["subject_id"]),
        event.get("channel") or "",
        event.get("category") or "",
        event.get("purpose") or "",
    )


def named_state(key: StateKey) -> dict[str, str]:
    return dict(zip(("subject_id", "channel", "category", "purpose"), key, strict=True))


def check_state_row(row: Mapping[str, Any], event: Mapping[str, Any] | None) -> None:
    """A consent_state row must repeat exactly the event it names."""
    key: StateKey = (row["subject_id"], row["channel"], row["category"], row["purpose"])
    seq = int(row["event_seq"])
    as_event = (
        (state_key(event), event.get("status"), event.get("id"), event.get("occurred_at"))
        if event is not None
        else None
    )
    as_row = (key, row["status"], row["event_id"], row["occurred_at"])
    if as_event != as_row:
        raise BadRecord(
            Finding(
                "state",
                f"the current state {'/'.join(k for k in key[1:] if k) or 'all marketing'} of "
                f"subject {key[0]} says {row['status']} by event {seq}, which is not what event "
                f"{seq} recorded",
                seq,
                state=named_state(key),
            )
        )


def check_superseded(event: Mapping[str, Any], row: Mapping[str, Any] | None, erased: bool) -> None:
    """After an event that sets a topic, the state row stands at that event or a later one."""
    key = state_key(event)
    assert key is not None
    seq = int(event["seq"])
    if row is None and not erased:
        problem = f"event {seq} set a current state that the consent_state table lacks"
    elif row is not None and int(row["event_seq"]) < seq:
        problem = (
            f"the current state says {row['status']} by event {row['event_seq']}, but event "
            f"{seq} changed it to {event.get('status')} later"
        )
    else:
        return
    raise BadRecord(Finding("state", problem, seq, state=named_state(key)))
