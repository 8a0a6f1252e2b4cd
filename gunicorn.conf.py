"""gunicorn settings: `gunicorn 'app:create_app()'` picks this file up from the working directory."""

import multiprocessing
import os

bind = os.environ.get("GUNICORN_BIND", f"0.0.0.0:{os.environ.get('PORT', '8000')}")
# Sync workers: each request is short and mostly database-bound.
workers = int(os.environ.get("GUNICORN_WORKERS", multiprocessing.cpu_count() * 2 + 1))
threads = int(os.environ.get("GUNICORN_THREADS", "1"))
worker_class = "gthread" if threads > 1 else "sync"
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = 20
keepalive = 5
max_requests = 10_000  # recycle workers now and then; jitter keeps them from restarting together
max_requests_jitter = 1_000
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
# Access logs carry the path only: a query string can hold an email, a URL path a token.
accesslog = os.environ.get("GUNICORN_ACCESS_LOG", "-")
access_log_format = '%(h)s "%(m)s %(U)s" %(s)s %(b)s %(L)ss'
errorlog = "-"
# ...and even the path is redacted where it holds a token (/confirm/<token>, /p/<token>, …).
logger_class = "app.logs.RedactingGunicornLogger"


def post_worker_init(worker: object) -> None:
    """Move the loaded app out of the garbage collector's sight: a request's collections then
    walk only what the request made (a 10,000-email batch check spent much of its time in GC)."""
    import gc

    gc.freeze()
