"""A new signing key: the JWKS publishes it beside the retired ones, old checkpoints verify."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from flask import Flask
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from app.config import Settings
from app.domain import proof
from app.models import ConsentEvent
from app.services import clients
from app.services.audit import checkpoints
from tests.concurrency import at_once
from tests.conftest import ApiClient


def token(app: Flask, engine: Engine) -> dict[str, str]:
    with Session(engine) as session:
        made = clients.create(session, "ring", "audit:read audit:write", iterations=1000)
    answer = app.test_client().post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(made.client_id, made.client_secret),
    )
    return {"Authorization": f"Bearer {answer.get_json()['access_token']}"}


def test_checkpoints_signed_before_a_rotation_still_verify(
    api: ApiClient,
    clean_db: Engine,
    settings: Settings,
    make_app: Callable[..., Flask],
    tmp_path: Path,
) -> None:
    assert api.post("/v1/audit/checkpoints").status_code == 201
    retired = settings.signing_key_path
    new = tmp_path / "keys" / "signing-2.json"
    checkpoints.new_key(new)

    rotated = make_app(audit_signing_key_path=new, audit_signing_old_key_paths=(retired,))
    headers = token(rotated, clean_db)
    client = rotated.test_client()
    assert client.post("/v1/audit/checkpoints", headers=headers).status_code == 201
    jwks = client.get("/.well-known/jwks.json").get_json()
    kids = [key["kid"] for key in jwks["keys"]]
    assert kids == [checkpoints.signing_key(new).kid, checkpoints.signing_key(retired).kid]
    assert all("d" not in key for key in jwks["keys"])  # public halves only

    with Session(clean_db) as session:
        details = session.scalars(
            select(ConsentEvent.details).where(ConsentEvent.action == "checkpoint")
        ).all()
    signed = [json.loads(d or "{}")["jws"] for d in details]
    keys = proof.key_set(jwks)
    assert len(signed) == 2
    assert all(proof.open_signed(jws, keys) for jws in signed)

    package = client.get("/v1/audit/package", headers=headers).get_data(as_text=True)
    report = proof.verify_package(package.splitlines(), keys)
    assert report.is_ok, report


def test_workers_starting_together_share_one_new_key(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "signing.json"

    def load() -> str | None:
        return checkpoints.load_keys(path).current.kid

    found = at_once(*[load] * 8)
    assert len(found) == 8
    assert len(set(found)) == 1
    assert [p.name for p in path.parent.iterdir()] == ["signing.json"]
