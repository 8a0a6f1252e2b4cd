"""Both paths of GET /v1/consent/check, answered and compared byte for byte.

`comparing()` makes every FastCheck answer each check twice: by its fast path and by Flask,
from the same state. Status, headers (in order, minus Date and X-Request-ID) and body must be
identical, or the request raises (and so the test making it fails). The caller gets the fast
path's answer. Where the fast path hands the request to Flask, Flask answers it; where that was
only because the token was new (Flask's answer caches it), the fast path is asked again from
the same state and must then answer alike.

The rate-limit counters the fast path touched are put back before Flask counts the same request
(in-memory storage); with another storage a second count would change the headers, so there the
fast path answers alone and the test's own assertions judge it.
"""

from __future__ import annotations

import copy
import io
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from limits.storage import MemoryStorage

from app.api.fastcheck import PATH, FastCheck
from app.extensions import limiter

IGNORED = frozenset({"date", "x-request-id"})


@dataclass
class Tally:
    compared: int = 0  # answered by both paths, identical
    handed_over: int = 0  # the fast path declined: Flask answered
    fast_only: int = 0  # limits counted in a store that cannot be put back
    statuses: list[int] = field(default_factory=list)


Answer = tuple[str, list[tuple[str, str]], bytes]


def flask_answer(check: FastCheck, environ: dict[str, Any]) -> Answer:
    captured: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        captured["status"], captured["headers"] = status, list(headers)
        return lambda _data: None

    chunks = check.flask_app(environ, start_response)
    try:
        body = b"".join(chunks)
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()
    return captured["status"], captured["headers"], body


def comparable(answer: Answer) -> Answer:
    status, headers, body = answer
    return status, [(k, v) for k, v in headers if k.lower() not in IGNORED], body


def _memory() -> MemoryStorage | None:
    storage = getattr(limiter, "_storage", None)
    return storage if isinstance(storage, MemoryStorage) else None


def _copy(environ: dict[str, Any]) -> dict[str, Any]:
    body = environ["wsgi.input"].read() if "wsgi.input" in environ else b""
    environ["wsgi.input"] = io.BytesIO(body)
    return {**environ, "wsgi.input": io.BytesIO(body)}


def both(check: FastCheck, environ: dict[str, Any], tally: Tally) -> Answer:
    """The fast path's answer, checked against Flask's; Flask's where the fast path declines."""
    flask_environ = _copy(environ)
    memory = _memory() if check.settings.ratelimit_enabled else None
    before = (copy.copy(memory.storage), dict(memory.expirations)) if memory else None
    fast = check.serve(dict(environ))
    if fast is None:
        tally.handed_over += 1
        slow = flask_answer(check, flask_environ)
        if not check.settings.ratelimit_enabled or memory is not None:
            _again(check, environ, slow, memory, before, tally)
        return slow
    if check.settings.ratelimit_enabled and (memory is None or before is None):
        tally.fast_only += 1
        return fast
    if memory is not None and before is not None:
        after = (copy.copy(memory.storage), dict(memory.expirations))
        memory.storage, memory.expirations = before
    slow = flask_answer(check, flask_environ)
    if memory is not None:
        assert (memory.storage, memory.expirations) == after, "the paths counted differently"
    assert comparable(fast) == comparable(slow), (environ.get("QUERY_STRING"), fast, slow)
    tally.compared += 1
    tally.statuses.append(int(fast[0].split()[0]))
    return fast


def _again(
    check: FastCheck,
    environ: dict[str, Any],
    slow: Answer,
    memory: MemoryStorage | None,
    before: tuple[Any, dict[str, float]] | None,
    tally: Tally,
) -> None:
    """Flask answered, and so cached the token where it was new: the fast path, from the same
    state as Flask had, must now answer alike (or decline again)."""
    after = (copy.copy(memory.storage), dict(memory.expirations)) if memory else None
    if memory is not None and before is not None:
        memory.storage, memory.expirations = before
    fast = check.serve(dict(environ))
    if memory is not None and after is not None:
        if fast is not None:
            assert (memory.storage, memory.expirations) == after, "the paths counted differently"
        memory.storage, memory.expirations = after
    if fast is not None:
        assert comparable(fast) == comparable(slow), (environ.get("QUERY_STRING"), fast, slow)
        tally.compared += 1
        tally.statuses.append(int(fast[0].split()[0]))


@contextmanager
def comparing(monkeypatch: pytest.MonkeyPatch) -> Iterator[Tally]:
    tally = Tally()

    def call(self: FastCheck, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        if not (self.enabled and environ.get("PATH_INFO") == PATH):
            return self.flask_app(environ, start_response)
        status, headers, body = both(self, environ, tally)
        start_response(status, headers)
        return [body]

    monkeypatch.setattr(FastCheck, "__call__", call)
    yield tally
