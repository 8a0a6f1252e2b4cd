"""gunicorn settings: `gunicorn 'app:create_app()'` picks this file up from the working directory.

gunicorn's own knobs (GUNICORN_*) are read here; the service's settings are read by app/config.py.
"""

import os
import shutil
import tempfile
from pathlib import Path

# Prometheus in multiprocess mode: every worker writes its metrics to this folder and
# GET /metrics adds them up. It is emptied when the master starts, never while it runs.
_METRICS = os.environ.setdefault(
    "PROMETHEUS_MULTIPROC_DIR", str(Path(tempfile.gettempdir()) / f"consent-center-{os.getpid()}")
)


from app.server import container_cpus, workers_for  # noqa: E402 - after the metrics folder

bind = os.environ.get("GUNICORN_BIND", f"0.0.0.0:{os.environ.get('PORT', '8000')}")
# Sync workers: each request is short and mostly database-bound.
# Sized from the container's CPU quota, not the host's CPU count.
workers = int(os.environ.get("GUNICORN_WORKERS", workers_for(container_cpus())))
threads = int(os.environ.get("GUNICORN_THREADS", "1"))
worker_class = "gthread" if threads > 1 else "sync"
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = 20
keepalive = 5
# Recycle workers now and then (0: never); the jitter keeps them from restarting together.
# A worker's start costs about 2.4 s of CPU (importing and building the app), so at 10,000 a
# loaded worker restarted every 40 s and each restart stalled the requests around it (p99
# 0.9-1.6 s against 31-71 ms, `python -m bench.run --only recycling`). The check path's
# memory stays flat (107 MB a worker over 90,000 requests), so restarts are rare: 100,000.
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "100000"))
max_requests_jitter = max_requests // 10
# The app believes X-Forwarded-For through ProxyFix (TRUSTED_PROXY_HOPS); gunicorn only for
# the scheme.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
# Access logs: one JSON object a line, the path only (a query string can hold an email) and the
# request id the app returned.
accesslog = os.environ.get("GUNICORN_ACCESS_LOG", "-")
access_log_format = (
    '{"time":"%(t)s","remote":"%(h)s","method":"%(m)s","path":"%(U)s","status":%(s)s,'
    '"bytes":"%(B)s","duration_s":%(L)s,"request_id":"%({x-request-id}o)s"}'
)
errorlog = "-"
# ...and even the path is redacted where it holds a token (/confirm/<token>, /p/<token>, …).
# (GUNICORN_LOGGER_CLASS is for the benchmark's plain-log baseline only.)
logger_class = os.environ.get("GUNICORN_LOGGER_CLASS", "app.logs.RedactingGunicornLogger")


def on_starting(server: object) -> None:
    shutil.rmtree(_METRICS, ignore_errors=True)
    Path(_METRICS).mkdir(parents=True, exist_ok=True)


def child_exit(server: object, worker: object) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)  # type: ignore[attr-defined]


def post_worker_init(worker: object) -> None:
    """Move the loaded app out of the garbage collector's sight: a request's collections then
    walk only what the request made (a 10,000-email batch check spent much of its time in GC)."""
    import gc

    gc.freeze()
