"""gunicorn settings: `gunicorn 'app:create_app()'` picks this file up from the working directory.

gunicorn's own knobs (GUNICORN_*) are read here; the service's settings are read by app/config.py.
"""

import os
import shutil
import tempfile
from pathlib import Path

bind = os.environ.get("GUNICORN_BIND", f"0.0.0.0:{os.environ.get('PORT', '8000')}")


def container_cpus() -> float:
    """CPUs this process may use: the cgroup quota (a container's --cpus), else the affinity."""
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]  # cgroup v2
        if quota != "max":
            return max(int(quota) / int(period), 1.0)
    except (OSError, ValueError):
        pass
    try:
        quota_us = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text())  # cgroup v1
        period_us = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text())
        if quota_us > 0:
            return max(quota_us / period_us, 1.0)
    except (OSError, ValueError):
        pass
    return float(len(os.sched_getaffinity(0)))


# Sync workers: each request is short and mostly database-bound.
workers = int(os.environ.get("GUNICORN_WORKERS", int(container_cpus() * 2) + 1))
threads = int(os.environ.get("GUNICORN_THREADS", "1"))
worker_class = "gthread" if threads > 1 else "sync"
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = 20
keepalive = 5
max_requests = 10_000  # recycle workers now and then; jitter keeps them from restarting together
max_requests_jitter = 1_000
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

# Prometheus in multiprocess mode: every worker writes its metrics to this folder and
# GET /metrics adds them up. It is emptied when the master starts, never while it runs.
_METRICS = os.environ.setdefault(
    "PROMETHEUS_MULTIPROC_DIR", str(Path(tempfile.gettempdir()) / f"consent-center-{os.getpid()}")
)


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
