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
from dataclasses import dataclass, replace
from typing import Any

from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, KeySet

from app.domain import chain

PACKAGE_FORMAT = "consent-center-audit-package/1"
CHECKPOINT_TYPE = "consent-center-checkpoint/1"
ALGORITHM = "ES256"
CHECKPOINT_ACTION = "checkpoint"
RETENTION_ACTION = "retention_run"


def sign(claims: Mapping[str, Any], key: ECKey) -> str:
    """A compact JWS (ES256) over the claims' canonical JSON."""
    header = {"alg": ALGORITHM, "kid": key.kid, "typ": "JWT"}
    return jws.serialize_compact(header, chain.canonical_json(dict(claims)).encode(), key)


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

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.is_ok,
            "complete": self.complete,
            "events_checked": self.events_checked,
            "checkpoints_checked": self.checkpoints_checked,
            "first_bad_seq": self.first_bad_seq,
            "problem": self.problem,
            "head_seq": self.head_seq,
        }


class BadPackage(Exception):  # noqa: N818 - reads as a finding, not a crash
    def __init__(self, seq: int | None, problem: str) -> None:
        super().__init__(problem)
        self.seq, self.problem = seq, problem


class _Reader:
    """Walks the package once, keeping only the last event: constant memory."""

    def __init__(self, lines: Iterable[str], keys: KeySet) -> None:
        self.lines, self.keys = lines, keys
        self.header: dict[str, Any] | None = None
        self.trailer: dict[str, Any] | None = None
        self.digest = Digest()
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
            elif kind == "event":
                yield self._event(record)
            elif kind == "checkpoint":
                self._checkpoint(record.get("jws"), int(record.get("seq") or 0), None)
            elif kind == "trailer":
                self.trailer = self._signed(record, "trailer")
        if self.header is None:
            raise BadPackage(None, "the package is empty")

    def _signed(self, record: Mapping[str, Any], what: str) -> dict[str, Any]:
        claims = open_signed(str(record.get("jws") or ""), self.keys)
        if claims is None:
            raise BadPackage(
                self.next_seq(), f"the {what}'s signature does not verify with the key"
            )
        return claims

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
            previous = (self.last_seq, self.last_hash) if self.last_seq == seq - 1 else None
            self._checkpoint((details or {}).get("jws"), seq, previous)
        if record.get("action") == RETENTION_ACTION:
            self.recorded_base = retention_base(details) or self.recorded_base
        self.digest.add(str(record.get("hash")))
        self.last_seq, self.last_hash = seq, str(record.get("hash"))
        return record

    def _checkpoint(
        self, token: Any, seq: int, previous: tuple[int | None, str | None] | None
    ) -> None:
        claims = open_signed(str(token or ""), self.keys)
        if claims is None or claims.get("typ") != CHECKPOINT_TYPE:
            raise BadPackage(seq, f"checkpoint {seq}'s signature does not verify")
        if previous is not None and (claims.get("seq"), claims.get("hash")) != previous:
            raise BadPackage(
                seq, f"checkpoint {seq} signed a head the events before it do not have"
            )
        self.checkpoints += 1


def verify_package(lines: Iterable[str], keys: KeySet) -> PackageReport:
    """Check a DPO package against its signatures; name the first bad sequence number."""
    reader = _Reader(lines, keys)
    complete = False
    try:
        first = next(reader.events, None)
        header = reader.header
        assert header is not None  # _events raises before yielding without one
        complete = bool(header.get("complete"))
        records = _chained(first, reader.events)
        if complete:
            result = chain.verify(
                records,
                base_seq=int(header["base_seq"]),
                base_hash=str(header["base_hash"]),
                head_seq=int(header["head_seq"]),
                head_hash=str(header["head_hash"]),
            )
        else:
            result = _verify_each(records)
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
        if complete:
            moved = base_problem(
                int(header["base_seq"]), str(header["base_hash"]), reader.recorded_base
            )
            if moved is not None:
                return _report(reader, complete, moved.first_bad_seq, moved.problem)
    except BadPackage as broken:
        return _report(reader, complete, broken.seq, broken.problem)
    except (KeyError, ValueError, TypeError) as error:
        return _report(reader, complete, reader.next_seq(), f"malformed record: {error}")
    return PackageReport(
        True,
        complete,
        reader.digest.count,
        reader.checkpoints,
        head_seq=int(reader.header["head_seq"]) if reader.header else None,
    )


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


def _report(reader: _Reader, complete: bool, seq: int | None, problem: str | None) -> PackageReport:
    return PackageReport(
        False, complete, reader.digest.count, reader.checkpoints, first_bad_seq=seq, problem=problem
    )
