"""The DPO export package: events, notices, the Art. 30 record and the proof, streamed."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.domain import chain, proof
from app.domain.vocabulary import Action
from app.models import ChainHead, NoticeVersion, utcnow
from app.services.audit import trail
from app.services.audit.checkpoints import SigningKeys
from app.services.consent import notices
from app.services.consent.ledger import CHAIN_ID


def stream(
    session: Session,
    filters: trail.EventFilter,
    keys: SigningKeys,
    catalog: Mapping[str, Any],
    *,
    now: datetime | None = None,
) -> Iterator[str]:
    """NDJSON lines of the package; events are read page by page, so memory stays constant."""
    now = now or utcnow()
    head = session.get(ChainHead, CHAIN_ID)
    base_seq, base_hash = (head.base_seq, head.base_hash) if head else (0, chain.GENESIS_HASH)
    head_seq, head_hash = (head.last_seq, head.last_hash) if head else (0, chain.GENESIS_HASH)
    complete = filters.is_complete
    filters = replace(filters, upto=head_seq)
    header = {
        "format": proof.PACKAGE_FORMAT,
        "chain_id": CHAIN_ID,
        "created_at": chain.format_time(now),
        "complete": complete,
        "filters": _filters(filters),
        "base_seq": base_seq,
        "base_hash": base_hash,
        "head_seq": head_seq,
        "head_hash": head_hash,
    }
    yield _line({"type": "header", **header, "jws": proof.sign(header, keys.current)})
    signed = proof.record_digests()

    def line(record: Mapping[str, Any]) -> str:
        proof.add_record(signed, record)
        return _line(record)

    yield line({"type": "key", "jwks": keys.jwks()})
    yield line({"type": "catalog", "catalog": dict(catalog)})
    for notice in _notices(session, filters):
        yield line(notice)
    digest = proof.Digest()
    for event in trail.iter_events(session, filters, with_proof=True):
        digest.add(event["hash"])
        yield _line({"type": "event", **event})
    if not complete:
        for event in trail.iter_events(
            session, trail.EventFilter(action=str(Action.CHECKPOINT), upto=head_seq)
        ):
            yield line(
                {
                    "type": "checkpoint",
                    "seq": event["seq"],
                    "occurred_at": event["occurred_at"],
                    "hash": event["hash"],
                    "jws": (event["details"] or {}).get("jws"),
                }
            )
    trailer = {
        "format": proof.PACKAGE_FORMAT,
        "events": digest.count,
        "digest": digest.hexdigest(),
        "records": {kind: sha.hexdigest() for kind, sha in signed.items()},
        "head_seq": head_seq,
        "head_hash": head_hash,
    }
    yield _line({"type": "trailer", **trailer, "jws": proof.sign(trailer, keys.current)})


def _notices(session: Session, filters: trail.EventFilter) -> Iterator[dict[str, Any]]:
    versions = trail.notice_versions(session, filters)
    if not versions:
        return
    rows = session.scalars(
        select(NoticeVersion)
        .where(NoticeVersion.version.in_(versions))
        .order_by(NoticeVersion.key, NoticeVersion.version, NoticeVersion.locale)
    )
    for n in rows:
        yield (
            {"type": "notice"}
            | notices.record(n)
            | {"published_at": chain.format_time(n.published_at)}
        )


def _filters(filters: trail.EventFilter) -> dict[str, Any]:
    return {
        "subject_id": filters.subject_id,
        "since": chain.format_time(filters.since) if filters.since else None,
        "until": chain.format_time(filters.until) if filters.until else None,
        "channel": filters.channel,
        "category": filters.category,
    }


def _line(record: Mapping[str, Any]) -> str:
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"
