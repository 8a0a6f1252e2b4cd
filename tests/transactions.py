"""Counting the commits that write, to hold each use case to one transaction."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session


@contextmanager
def counting_commits(session: Session, *, reads: bool = False) -> Iterator[list[Session]]:
    """The list grows by one for each commit inside the block that carries a write.

    A commit with nothing flushed since the last one (ledger.lock ending the reads before the
    write lock on SQLite) is no transaction of its own and is counted only with `reads`.
    """
    commits: list[Session] = []
    flushed: list[bool] = []

    def on_flush(flushing: Session, context: Any) -> None:
        flushed.append(True)

    def on_commit(committed: Session) -> None:
        if flushed or reads:
            commits.append(committed)
        flushed.clear()

    def on_rollback(rolled_back: Session) -> None:
        flushed.clear()

    listeners: dict[str, Callable[..., None]] = {
        "after_flush": on_flush,
        "after_commit": on_commit,
        "after_rollback": on_rollback,
    }
    for name, listener in listeners.items():
        event.listen(session, name, listener)
    try:
        yield commits
    finally:
        for name, listener in listeners.items():
            event.remove(session, name, listener)
