"""Signed proof of the audit chain: checkpoints, the DPO package's format, and its verifier.

Everything here is pure: it needs the package's lines and the service's public key, never the
database, so an auditor can run it on their own machine (`consent-center audit verify --file`).

A package is NDJSON, one typed record a line: a signed ``header`` (the chain's base and head
when the package was made, and the filters), the ``key``, the ``catalog`` (Art. 30 record),
the ``notice`` texts the events point to, the ``event`` records in seq order, for a filtered
package the ``checkpoint`` records, and a signed ``trailer`` (count and digest of the events).
A complete package is verified link by link from the base to the signed head; a filtered one
proves each event's own hash, their order, that none was added or removed (the signed digest),
and the checkpoints' signatures, but not that the events link into the chain: the events in
between are not in it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, KeySet

from app.domain import chain, records

PACKAGE_FORMAT = "consent-center-audit-package/2"  # /2: the trailer signs every record
CHECKPOINT_TYPE = "consent-center-checkpoint/1"
ALGORITHM = "ES256"
CHECKPOINT_ACTION = "checkpoint"
RETENTION_ACTION = "retention_run"


def sign(claims: Mapping[str, Any], key: ECKey) -> str:
    """A compact JWS (ES256) over the claims' canonical JSON."""
    header = {"alg": ALGORITHM, "kid": key.kid, "typ": "JWT"}
    return jws.serialize_compact(header, chain.canonical_utf8(dict(claims)), key)


def open_signed(token: str, keys: KeySet) -> dict[str, Any] | None:
    """The claims of a JWS made with one of `keys`, or None if it is forged or malformed."""
    try:
        found = jws.deserialize_compact(token, keys, algorithms=[ALGORITHM])
        claims = json.loads(found.payload)
    except (JoseError, ValueError, TypeError):
        return None
    return claims if isinstance(claims, dict) else None


def key_set(raw: Mapping[str, Any]) -> KeySet:
    """A JWK set, or one bare JWK, as published at /.well-known/jwks.json."""
    keys = raw.get("keys") if "keys" in raw else [dict(raw)]
    return KeySet.import_key_set({"keys": [k for k in keys or [] if isinstance(k, dict)]})


def checkpoint_claims(
    chain_id: str, seq: int, head_hash: str, base_seq: int, base_hash: str, time: str
) -> dict[str, Any]:
    """What a checkpoint signs: the head, and the base that retention may have moved."""
    return {
        "typ": CHECKPOINT_TYPE,
        "chain_id": chain_id,
        "seq": seq,
        "hash": head_hash,
        "base_seq": base_seq,
        "base_hash": base_hash,
        "time": time,
    }


def base_problem(
    base_seq: int, base_hash: str, recorded: Mapping[str, Any] | None
) -> chain.Verification | None:
    """The base must be genesis, or exactly the one the latest retention run recorded.

    So deleting the first remaining event by hand, and moving the base to hide it, is caught.
    """
    if recorded is None:
        if base_seq == 0 and base_hash == chain.GENESIS_HASH:
            return None
        return chain.Verification(
            False,
            0,
            first_bad_seq=base_seq,
            problem="the chain's base moved without a retention run",
        )
    if recorded.get("base_seq") == base_seq and recorded.get("base_hash") == base_hash:
        return None
    expected = int(recorded.get("base_seq") or 0) + 1
    return chain.Verification(
        False,
        0,
        first_bad_seq=expected,
        problem=f"the chain should start after event {expected - 1}, as the last retention "
        f"run recorded, but starts after {base_seq}",
    )


def retention_base(details: Any) -> dict[str, Any] | None:
    if isinstance(details, str):
        details = json.loads(details)
    if isinstance(details, dict) and "base_seq" in details:
        return {"base_seq": details["base_seq"], "base_hash": details["base_hash"]}
    return None


SIGNED_RECORDS = ("key", "catalog", "notice", "checkpoint")  # the trailer signs their digests


def record_digests() -> dict[str, Any]:
    return {kind: hashlib.sha256() for kind in SIGNED_RECORDS}


def add_record(digests: Mapping[str, Any], record: Mapping[str, Any]) -> None:
    """Fold a record into its type's digest: sha256 over each record's canonical JSON line."""
    digests[str(record["type"])].update(chain.canonical_utf8(dict(record)) + b"\n")


class Digest:
    """The signed trailer's digest: sha256 over the included events' hashes, in order."""

    def __init__(self) -> None:
        self._sha = hashlib.sha256()
        self.count = 0

    def add(self, event_hash: str) -> None:
        self._sha.update(event_hash.encode() + b"\n")
        self.count += 1

    def hexdigest(self) -> str:
        return self._sha.hexdigest()


@dataclass(frozen=True)
class PackageReport:
    is_ok: bool
    complete: bool
    events_checked: int
    checkpoints_checked: int
    first_bad_seq: int | None = None
    problem: str | None = None
    head_seq: int | None = None
    finding: records.Finding | None = None
    checked: Mapping[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.is_ok,
            "complete": self.complete,
            "events_checked": self.events_checked,
            "checkpoints_checked": self.checkpoints_checked,
            "first_bad_seq": self.first_bad_seq,
            "problem": self.problem,
            "head_seq": self.head_seq,
            **(self.finding.as_dict() if self.finding else records.NO_FINDING),
            "checked": dict(self.checked),
        }


class BadPackage(records.BadRecord):
    def __init__(self, seq: int | None, problem: str, record: str = "package") -> None:
        super().__init__(records.Finding(record, problem, seq))
        self.seq, self.problem = seq, problem


def check_checkpoint(seq: int, token: Any, keys: KeySet, previous: tuple[int, str] | None) -> None:
    """A checkpoint's JWS must verify with the service's keys and sign the event before it."""
    claims = open_signed(str(token or ""), keys)
    if claims is None or claims.get("typ") != CHECKPOINT_TYPE:
        raise BadPackage(seq, f"checkpoint {seq}'s signature does not verify", "checkpoint")
    if previous is not None and (claims.get("seq"), claims.get("hash")) != previous:
        raise BadPackage(
            seq, f"checkpoint {seq} signed a head the events before it do not have", "checkpoint"
        )


class _Reader:
    """Walks the package once, keeping only the last event and the notice texts: flat memory.

    Every record type is checked: the key against the one given, each notice's text against
    its hash and the events citing it, each event's evidence against its hash; the trailer
    signs a digest of each kind of record, so a changed catalog byte fails too.
    """

    def __init__(self, lines: Iterable[str], keys: KeySet) -> None:
        self.lines, self.keys = lines, keys
        self.header: dict[str, Any] | None = None
        self.trailer: dict[str, Any] | None = None
        self.digest = Digest()
        self.records = record_digests()
        self.notices = records.Notices()
        self.counts = records.Counts()
        self.checkpoints = 0
        self.last_seq: int | None = None
        self.last_hash: str | None = None
        self.recorded_base: dict[str, Any] | None = None
        self.events = self._events()

    def next_seq(self) -> int | None:
        if self.last_seq is not None:
            return self.last_seq + 1
        return int(self.header["base_seq"]) + 1 if self.header else None

    def _events(self) -> Iterator[dict[str, Any]]:
        for number, line in enumerate(self.lines, 1):
            if not line.strip():
                continue
            if self.trailer is not None:
                raise BadPackage(self.next_seq(), f"line {number} comes after the trailer")
            try:
                record = json.loads(line)
            except ValueError:
                raise BadPackage(self.next_seq(), f"line {number} is not valid JSON") from None
            if not isinstance(record, dict):
                raise BadPackage(self.next_seq(), f"line {number} is not a record")
            kind = record.get("type")
            if self.header is None:
                if kind != "header":
                    raise BadPackage(None, "the package does not start with its header")
                self.header = self._signed(record, "header")
                if self.header.get("format") != PACKAGE_FORMAT:
                    raise BadPackage(None, "the package's format is not one this verifier knows")
                continue
            if kind in SIGNED_RECORDS:
                add_record(self.records, record)
            if kind == "event":
                yield self._event(record)
            elif kind == "checkpoint":
                check_checkpoint(int(record.get("seq") or 0), record.get("jws"), self.keys, None)
                self.checkpoints += 1
            elif kind == "trailer":
                self.trailer = self._signed(record, "trailer")
            elif kind == "key":
                self._key(record)
            elif kind == "notice":
                self.notices.add(record)
                self.counts.notices += 1
            elif kind != "catalog":
                raise BadPackage(
                    self.next_seq(), f"line {number} is a record of unknown type {kind!r}"
                )
        if self.header is None:
            raise BadPackage(None, "the package is empty")

    def _signed(self, record: Mapping[str, Any], what: str) -> dict[str, Any]:
        claims = open_signed(str(record.get("jws") or ""), self.keys)
        if claims is None:
            raise BadPackage(
                self.next_seq(), f"the {what}'s signature does not verify with the key", what
            )
        return claims

    def _key(self, record: Mapping[str, Any]) -> None:
        """The package's key record must be the key it is verified with, not another one."""
        given = {k.kid: k.as_dict(private=False) for k in self.keys.keys}
        try:
            held = {k.kid: k.as_dict(private=False) for k in key_set(record["jwks"]).keys}
        except (KeyError, ValueError, TypeError, JoseError):
            held = {}
        if not held or any(given.get(kid) != key for kid, key in held.items()):
            raise BadPackage(
                self.next_seq(),
                "the package's key record is not the key it is verified with",
                "key",
            )

    def _event(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        record = dict(raw)
        details = record.get("details")
        record["details"] = None if details is None else chain.canonical_json(details)
        seq = int(record.get("seq") or 0)
        if self.last_seq is not None and seq <= self.last_seq:
            raise BadPackage(seq, f"event {seq} comes after event {self.last_seq}: out of order")
        if self.header and seq > int(self.header["head_seq"]):
            raise BadPackage(seq, f"event {seq} is past the signed head {self.header['head_seq']}")
        if record.get("action") == CHECKPOINT_ACTION:
            previous = None
            if self.last_seq == seq - 1 and self.last_hash is not None:
                previous = (self.last_seq, self.last_hash)
            check_checkpoint(seq, (details or {}).get("jws"), self.keys, previous)
            self.checkpoints += 1
        if record.get("action") == RETENTION_ACTION:
            self.recorded_base = retention_base(details) or self.recorded_base
        self.digest.add(str(record.get("hash")))
        self.last_seq, self.last_hash = seq, str(record.get("hash"))
        return record

    def check_records(self, event: Mapping[str, Any]) -> None:
        """What an event vouches for, once the chain has vouched for the event."""
        self.notices.cite(event)
        if event.get("action") == records.NOTICE_PUBLISHED:
            self.notices.published(event, json.loads(event.get("details") or "{}"))
        evidence = event.get("evidence")
        if event.get("evidence_hash") and isinstance(evidence, dict):
            records.check_evidence(int(event["seq"]), str(event["evidence_hash"]), evidence)
            self.counts.evidence += 1
        self.counts.events += 1

    def signed_records(self) -> records.Finding | None:
        """Each kind of record must be the one the trailer signed."""
        signed = (self.trailer or {}).get("records") or {}
        for kind in SIGNED_RECORDS:
            if signed.get(kind) != self.records[kind].hexdigest():
                return records.Finding(
                    kind,
                    f"the package's {kind} record(s) are not those it was signed with",
                    None,
                )
        return None

    def checked(self) -> dict[str, int]:
        return self.counts.as_dict() | {"checkpoints": self.checkpoints}


def verify_package(lines: Iterable[str], keys: KeySet) -> PackageReport:
    """Check a DPO package against its signatures; name the first bad record and seq."""
    reader = _Reader(lines, keys)
    complete = False
    try:
        first = next(reader.events, None)
        header = reader.header
        assert header is not None  # _events raises before yielding without one
        complete = bool(header.get("complete"))
        events = _checked(reader, _chained(first, reader.events))
        if complete:
            result = chain.verify(
                events,
                base_seq=int(header["base_seq"]),
                base_hash=str(header["base_hash"]),
                head_seq=int(header["head_seq"]),
                head_hash=str(header["head_hash"]),
            )
        else:
            result = _verify_each(events)
        if not result.is_ok:
            return replace(
                _report(reader, complete, result.first_bad_seq, result.problem),
                events_checked=result.events_checked,
            )
        for _ in reader.events:  # pragma: no cover - chain.verify reads every event
            pass
        if reader.trailer is None:
            cut = "the package is cut off: it has no trailer"
            return _report(reader, complete, reader.next_seq(), cut)
        trailer = reader.trailer
        if (trailer.get("events"), trailer.get("digest")) != (
            reader.digest.count,
            reader.digest.hexdigest(),
        ):
            return _report(
                reader,
                complete,
                None,
                f"the package holds {reader.digest.count} events, or other ones, than the "
                f"{trailer.get('events')} its trailer signed",
            )
        unsigned = reader.signed_records()
        if unsigned is not None:
            return _report(reader, complete, None, unsigned.problem, unsigned)
        if complete:
            unvouched = reader.notices.unvouched() if header["base_seq"] == 0 else None
            if unvouched is not None:
                return _report(reader, complete, None, unvouched.problem, unvouched)
            moved = base_problem(
                int(header["base_seq"]), str(header["base_hash"]), reader.recorded_base
            )
            if moved is not None:
                return _report(reader, complete, moved.first_bad_seq, moved.problem)
    except BadPackage as broken:
        return _report(reader, complete, broken.seq, broken.problem, broken.finding)
    except records.BadRecord as bad:
        return _report(reader, complete, bad.finding.seq, bad.finding.problem, bad.finding)
    except (KeyError, ValueError, TypeError) as error:
        return _report(reader, complete, reader.next_seq(), f"malformed record: {error}")
    return PackageReport(
        True,
        complete,
        reader.digest.count,
        reader.checkpoints,
        head_seq=int(reader.header["head_seq"]) if reader.header else None,
        checked=reader.checked(),
    )


def _checked(reader: _Reader, events: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Yield each event to the chain check, then check what it vouches for."""
    for event in events:
        yield event
        reader.check_records(event)


def _chained(first: dict[str, Any] | None, rest: Iterator[dict[str, Any]]) -> Iterator[Any]:
    if first is not None:
        yield first
    yield from rest


def _verify_each(records: Iterable[Mapping[str, Any]]) -> chain.Verification:
    checked = 0
    for record in records:
        if chain.event_hash(record) != record.get("hash"):
            seq = int(record["seq"])
            return chain.Verification(
                False, checked, first_bad_seq=seq, problem=f"event {seq} was altered"
            )
        checked += 1
    return chain.Verification(True, checked)


def _report(
    reader: _Reader,
    complete: bool,
    seq: int | None,
    problem: str | None,
    finding: records.Finding | None = None,
) -> PackageReport:
    return PackageReport(
        False,
        complete,
        reader.digest.count,
        reader.checkpoints,
        first_bad_seq=seq,
        problem=problem,
        finding=finding or records.Finding("event", problem or "", seq),
        checked=reader.checked(),
    )
