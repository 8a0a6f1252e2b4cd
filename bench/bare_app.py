"""The baseline: bare Flask endpoints of the same shapes, with no database and no auth.

Served with the same gunicorn settings as the service (`gunicorn -c gunicorn.conf.py
bench.bare_app:app`), so every figure can be read as a share of what Flask alone does here.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from flask import Flask, Response, request
from flask.typing import ResponseReturnValue

app = Flask(__name__)

_EVENT = {
    "seq": 1,
    "id": "00000000-0000-4000-9000-000000000001",
    "occurred_at": "2026-01-01T00:00:00.000000Z",
    "subject_id": "00000000-0000-4000-8000-000000000001",
    "channel": "email",
    "category": "newsletter",
    "purpose": None,
    "action": "grant",
    "status": "granted",
    "source": "bench",
    "actor": "bench:seed",
    "notice_version": None,
    "prev_hash": "0" * 64,
    "hash": "f" * 64,
    "chain_id": "main",
    "legal_basis": "consent",
    "method": "import",
    "capture_point": None,
    "locale": "en",
    "notice_sha256": None,
    "evidence_hash": None,
    "details": None,
    "evidence": None,
}


@app.get("/healthz")
def healthz() -> ResponseReturnValue:
    return {"status": "ok"}


@app.get("/v1/consent/check")
def check() -> ResponseReturnValue:
    return {
        "allowed": True,
        "reason": "granted",
        "subject_id": None,
        "event_id": request.args.get("email"),
    }


@app.post("/v1/consent/check")
def check_batch() -> ResponseReturnValue:
    emails = (request.get_json() or {}).get("emails", [])
    return {
        "results": [{"email": e, "allowed": True, "reason": "granted"} for e in emails],
        "allowed": len(emails),
        "denied": 0,
    }


@app.patch("/v1/subjects/<subject_id>/preferences")
def change(subject_id: str) -> ResponseReturnValue:
    body: dict[str, Any] = request.get_json() or {}
    return {"subject_id": subject_id, "changes": body.get("changes", [])}


_CHANGE = {
    "cursor": "1",
    "occurred_at": "2026-01-01T00:00:00.000000Z",
    "subject_id": "00000000-0000-4000-8000-000000000001",
    "identifiers": {"email": ["user1@bench.example"], "phone": [], "external_id": []},
    "channel": "email",
    "category": "newsletter",
    "purpose": None,
    "status": "granted",
    "action": "grant",
}


@app.get("/v1/changes")
def changes() -> ResponseReturnValue:
    after, limit = int(request.args.get("after", "0")), int(request.args.get("limit", "100"))
    items = [_CHANGE | {"cursor": str(after + i + 1)} for i in range(limit)]
    return {"changes": items, "next_after": items[-1]["cursor"]}


@app.get("/v1/audit/export")
def export() -> ResponseReturnValue:
    count = int(request.args.get("count", "1000"))

    def lines() -> Iterator[str]:
        for seq in range(1, count + 1):
            yield json.dumps(_EVENT | {"seq": seq}, separators=(",", ":")) + "\n"

    return Response(lines(), mimetype="application/x-ndjson")
