"""Workers starting at once on an empty instance folder end up with one signing key."""

from __future__ import annotations

import threading
from pathlib import Path

from app.services.audit import checkpoints


def test_workers_racing_to_make_the_key_all_load_the_same_one(tmp_path: Path) -> None:
    path = tmp_path / "instance" / "audit-signing-key.json"
    barrier = threading.Barrier(8)
    kids: list[str] = []

    def start() -> None:
        barrier.wait()
        kids.append(str(checkpoints.signing_key(path).kid))

    threads = [threading.Thread(target=start) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(kids) == 8
    assert set(kids) == {checkpoints.signing_key(path).kid}
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no draft left behind
