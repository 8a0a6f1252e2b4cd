"""Helpers for the identity and import tests: confirming by the mailed link, running imports."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from app.domain.rules import Rules
from app.models import OutboxMessage
from app.services.imports import jobs
from app.worker import run_import
from tests.conftest import ApiClient
from tests.smtp import confirm_link
from tests.web.pages import csrf_token


def confirm_by_mail(api: ApiClient, engine: Engine, address: str) -> None:
    """POST the confirmation link last mailed to `address`, as the person's mail client would."""
    with Session(engine) as session:
        message = session.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.to_address == address)
            .order_by(OutboxMessage.created_at.desc())
        ).first()
    assert message is not None, f"no mail to {address}"
    path = confirm_link(message.body_text or "").removeprefix("http://localhost:5000")
    page = api.http.get(path).get_data(as_text=True)
    response = api.http.post(path, data={"csrf_token": csrf_token(page)})
    assert response.status_code == 200, response.get_data(as_text=True)


def run_imports(engine: Engine, rules: Rules) -> None:
    """What the worker does: apply every queued import to the end."""
    with Session(engine) as session:
        while (import_id := jobs.next_due(session)) is not None:
            run_import(session, rules, import_id)


def upload(api: ApiClient, body: str, *, csv: bool = False, dry_run: bool = False) -> str:
    response = api.post(
        "/v1/imports" + ("?dry_run=true" if dry_run else ""),
        data=body.encode(),
        content_type="text/csv" if csv else "application/x-ndjson",
    )
    assert response.status_code == 202, response.get_json()
    return str(response.get_json()["import_id"])


def import_report(api: ApiClient, import_id: str) -> dict[str, Any]:
    response = api.get(f"/v1/imports/{import_id}")
    assert response.status_code == 200, response.get_json()
    return response.get_json()  # type: ignore[no-any-return]
