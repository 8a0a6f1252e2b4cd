"""/metrics under gunicorn adds up every worker (prometheus-client's multiprocess mode)."""

from __future__ import annotations

import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from tests.faults.conftest import Gunicorn

HEALTHZ = re.compile(
    r'^consent_center_request_duration_seconds_count\{(?=[^}]*route="/healthz")[^}]*\} (\S+)$',
    re.MULTILINE,
)


def served(server: Gunicorn) -> float:
    answer = server.request("GET", "/metrics")
    assert answer.status == 200
    return sum(float(n) for n in HEALTHZ.findall(str(answer.body)))


def test_metrics_count_the_requests_of_every_worker(gunicorn: Callable[..., Gunicorn]) -> None:
    server = gunicorn(workers=3)
    before = served(server)
    # Six at a time, a new connection each: the three sync workers all take some of them, so
    # a scrape that saw only its own worker's counts would report fewer than 30.
    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda _: server.request("GET", "/healthz"), range(30)))
    assert {answer.status for answer in answers} == {200}
    assert len({answer.headers.get("X-Request-ID") for answer in answers}) == 30
    # Whichever worker answers the scrape, it reports all three workers' counts.
    assert [served(server) - before for _ in range(3)] == [30.0, 30.0, 30.0]
