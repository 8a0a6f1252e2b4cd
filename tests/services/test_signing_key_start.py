"""Workers starting at once on an empty instance folder end up with one signing key."""

from __future__ import annotations

from pathlib import Path

from app.services.audit import checkpoints
from tests.concurrency import at_once


def test_workers_racing_to_make_the_key_all_load_the_same_one(tmp_path: Path) -> None:
    path = tmp_path / "instance" / "audit-signing-key.json"

    def start() -> str:
        return str(checkpoints.signing_key(path).kid)

    kids = at_once(*[start] * 8)
    assert len(kids) == 8
    assert set(kids) == {checkpoints.signing_key(path).kid}
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no draft left behind
