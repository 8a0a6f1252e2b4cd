"""Log redaction: tokens in URL paths and personal data in query strings never reach a log.

A link such as /confirm/<token> is a bearer credential, and ?email=… on a check is personal
data, so every log line that can carry a URL goes through `redact`: gunicorn's access log (the
`RedactingGunicornLogger` that gunicorn.conf.py names), and the application, werkzeug (the dev
server's request log) and gunicorn error loggers (the `RedactingFilter`).
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime
from typing import Any

from gunicorn.glogging import Logger as GunicornLogger

REDACTED = "[redacted]"
# Paths whose next segment is a token however short it is (links the service emails).
TOKEN_PREFIXES = ("confirm", "p", "u", "access", "unsubscribe", "preferences", "security")
_TOKEN_AFTER_PREFIX = re.compile(
    r"(/(?:" + "|".join(TOKEN_PREFIXES) + r")/)[^/\s?#\"']+", re.IGNORECASE
)
# Anything else that looks like a token: a long run of URL-safe characters in a path segment
# (itsdangerous, JWT, token_urlsafe). UUIDs (subject ids) are kept: they identify no one.
_LONG_SEGMENT = re.compile(r"(?<=/)[A-Za-z0-9_\-.~=%]{20,}(?=[/\s?#\"']|$)")
# ...and, anywhere in a message (an exception text), a long run of letters mixed with digits.
_TOKEN_WORD = re.compile(r"(?<![\w\-.~=%])(?=[\w\-.~=%]*\d)(?=[\w\-.~=%]*[A-Za-z])[\w\-.~=%]{24,}")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_QUERY = re.compile(r"\?[^\s\"'#]+")
_EMAIL = re.compile(r"[^\s/@?&=\"'<>:]+(?:@|%40)[^\s/@?&=\"'<>]+\.[A-Za-z]{2,}")


def _long_segment(match: re.Match[str]) -> str:
    return match.group(0) if _UUID.fullmatch(match.group(0)) else REDACTED


def redact(text: str) -> str:
    """`text` (a path, a request line, a whole log message) without tokens, queries or emails."""
    text = _QUERY.sub("?" + REDACTED, text)
    text = _TOKEN_AFTER_PREFIX.sub(r"\1" + REDACTED, text)
    text = _LONG_SEGMENT.sub(_long_segment, text)
    text = _TOKEN_WORD.sub(_long_segment, text)
    return _EMAIL.sub(REDACTED, text)


class RedactingFilter(logging.Filter):
    """Rewrites a record's message (and its traceback) through `redact`; drops no record."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


class JSONFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, request_id, and the traceback."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        return json.dumps(entry, ensure_ascii=False)


REDACTED_LOGGERS = ("werkzeug", "gunicorn.error", "gunicorn.access", "flask_limiter")


def install_redaction(*loggers: logging.Logger) -> None:
    """Idempotent: a logger gets one RedactingFilter however many apps are created."""
    for logger in (*loggers, *(logging.getLogger(name) for name in REDACTED_LOGGERS)):
        if not any(isinstance(f, RedactingFilter) for f in logger.filters):
            logger.addFilter(RedactingFilter())


class RedactingGunicornLogger(GunicornLogger):  # type: ignore[misc]
    """gunicorn's logger with every URL-bearing access-log atom redacted."""

    URL_ATOMS = ("r", "U", "q", "f")  # request line, path, query, referer

    def atoms(self, resp: Any, req: Any, environ: Any, request_time: Any) -> dict[str, Any]:
        atoms: dict[str, Any] = super().atoms(resp, req, environ, request_time)
        for name in self.URL_ATOMS:
            if isinstance(atoms.get(name), str):
                atoms[name] = redact(atoms[name]) if name != "q" else REDACTED * bool(atoms[name])
        for name, value in list(atoms.items()):
            # {referer}i, {x-original-url}i and the like: headers that carry URLs.
            if name.startswith("{") and isinstance(value, str):
                atoms[name] = redact(value)
        return atoms

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        install_redaction(self.error_log, self.access_log)
        for handler in self.error_log.handlers:  # the access log's format is JSON already
            handler.setFormatter(JSONFormatter())
