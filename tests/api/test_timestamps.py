"""Every time in an API answer or export is RFC 3339 in UTC with `Z`, never `+00:00`."""

from __future__ import annotations

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from app.domain.rules import Rules
from tests.conftest import ApiClient
from tests.factories import make_subscriber
from tests.wire import UTC_TIME, offset_times


def test_no_answer_or_export_writes_a_time_with_an_offset(
    api: ApiClient, clean_db: Engine, rules: Rules
) -> None:
    with Session(clean_db) as session:
        subject_id = make_subscriber(session, rules)
    notice = {"key": "terms", "version": "1", "locale": "en", "title": "T", "text": "Words."}
    assert api.post("/v1/notices", json=notice).status_code in (200, 201)
    received = {
        "subject_id": subject_id,
        "kind": "access",
        "received_at": "2026-11-01T10:00:00+01:00",
    }
    assert api.post("/v1/rights-requests", json=received).status_code == 201
    assert api.post("/v1/audit/checkpoints").status_code == 201
    paths = [
        "/v1/subjects?email=ada@example.org",
        f"/v1/subjects/{subject_id}/preferences",
        f"/v1/subjects/{subject_id}/export",
        f"/v1/subjects/{subject_id}/evidence/double-opt-in",
        "/v1/audit/events",
        "/v1/audit/export?format=ndjson",
        "/v1/audit/export?format=csv",
        "/v1/audit/checkpoints",
        "/v1/audit/package",
        "/v1/rights-requests",
        "/v1/notices",
    ]
    for path in paths:
        response = api.get(path)
        assert response.status_code == 200, path
        text = response.get_data(as_text=True)
        assert offset_times(text) == [], path
        assert UTC_TIME.search(text), path
