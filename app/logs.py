"""Log redaction: tokens in URL paths and personal data in query strings never reach a log.

A link such as /confirm/<token> is a bearer credential, and ?email=… on a check is personal
data, so every log line that can carry a URL goes through `redact`: gunicorn's access log (the
`RedactingGunicornLogger` that gunicorn.conf.py names), and the application, werkzeug (the dev
server's request log) and gunicorn error loggers (the `RedactingFilter`).
"""

from __future__ import annotations

import json
import logging
import os
import re
import traceback
from collections.abc import Callable, Iterable
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


# One access-log atom from gunicorn's table (glogging.Logger.atoms), computed on its own.
_ATOMS: dict[str, Callable[[Any, Any, Any, Any], Any]] = {
    "h": lambda resp, req, environ, rt: environ.get("REMOTE_ADDR", "-"),
    "l": lambda resp, req, environ, rt: "-",
    "r": lambda resp, req, environ, rt: (
        f"{environ['REQUEST_METHOD']} {environ['RAW_URI']} {environ['SERVER_PROTOCOL']}"
    ),
    "s": lambda resp, req, environ, rt: (
        resp.status.split(None, 1)[0] if isinstance(resp.status, str) else resp.status
    ),
    "m": lambda resp, req, environ, rt: environ.get("REQUEST_METHOD"),
    "U": lambda resp, req, environ, rt: environ.get("PATH_INFO"),
    "q": lambda resp, req, environ, rt: environ.get("QUERY_STRING"),
    "H": lambda resp, req, environ, rt: environ.get("SERVER_PROTOCOL"),
    "b": lambda resp, req, environ, rt: (
        (getattr(resp, "sent", None) is not None and str(resp.sent)) or "-"
    ),
    "B": lambda resp, req, environ, rt: getattr(resp, "sent", None),
    "f": lambda resp, req, environ, rt: environ.get("HTTP_REFERER", "-"),
    "a": lambda resp, req, environ, rt: environ.get("HTTP_USER_AGENT", "-"),
    "T": lambda resp, req, environ, rt: rt.seconds,
    "D": lambda resp, req, environ, rt: rt.seconds * 1_000_000 + rt.microseconds,
    "M": lambda resp, req, environ, rt: rt.seconds * 1000 + int(rt.microseconds / 1000),
    "L": lambda resp, req, environ, rt: f"{rt.seconds}.{rt.microseconds:06d}",
    "p": lambda resp, req, environ, rt: f"<{os.getpid()}>",
}
_FORMAT_ATOM = re.compile(r"%\(([^)]+)\)")


def _headers(headers: Any) -> Iterable[tuple[str, str]]:
    items: Iterable[tuple[str, str]] = headers.items() if hasattr(headers, "items") else headers
    return items


class RedactingGunicornLogger(GunicornLogger):  # type: ignore[misc]
    """gunicorn's logger with every URL-bearing access-log atom redacted.

    Only the atoms that `access_log_format` prints are computed, escaped and redacted (gunicorn
    itself builds, escapes and the filter would redact all of them, headers and environ
    included), so the redacting log costs what a plain one does. The line is then written
    without passing through RedactingFilter again: each atom that can carry a URL (`r`, `U`,
    `q`, `f` and every `{header}i/o/e`) was redacted on its own, which is what the filter does.
    """

    URL_ATOMS = ("r", "U", "q", "f")  # request line, path, query, referer

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        install_redaction(self.error_log, self.access_log)
        for handler in self.error_log.handlers:  # the access log's format is JSON already
            handler.setFormatter(JSONFormatter())
        self._used = tuple(dict.fromkeys(_FORMAT_ATOM.findall(cfg.access_log_format or "")))
        braced: dict[str, set[str]] = {}
        for name in self._used:  # {header}i, {header}o, {variable}e, matched case-insensitively
            if name.startswith("{") and name[-2:-1] == "}" and name[-1] in "ioe":
                braced.setdefault(name[-1], set()).add(name[1:-2].lower())
        self._braced = tuple(braced.items())

    def atoms(self, resp: Any, req: Any, environ: Any, request_time: Any) -> dict[str, Any]:
        """The atoms the format uses, redacted; the others are absent (printed as "-")."""
        used = getattr(self, "_used", None)
        if used is None:  # not set up (a caller outside gunicorn): every atom, as gunicorn does
            return self._redacted(super().atoms(resp, req, environ, request_time))
        atoms: dict[str, Any] = {}
        for name in used:
            compute = _ATOMS.get(name)
            if compute is not None:
                atoms[name] = compute(resp, req, environ, request_time)
            elif name == "t":
                atoms[name] = self.now()
            elif name == "u":
                atoms[name] = self._get_user(environ) or "-"
        for kind, wanted in self._braced:
            source: Iterable[tuple[str, Any]] = (
                _headers(getattr(req, "headers", req))
                if kind == "i"
                else _headers(resp.headers)
                if kind == "o"
                else environ.items()
            )
            for key, value in source:
                lowered = key.lower()
                if lowered in wanted:
                    atoms[f"{{{lowered}}}{kind}"] = value
        return self._redacted(atoms)

    def _redacted(self, atoms: dict[str, Any]) -> dict[str, Any]:
        for name in self.URL_ATOMS:
            if isinstance(atoms.get(name), str):
                atoms[name] = redact(atoms[name]) if name != "q" else REDACTED * bool(atoms[name])
        for name, value in atoms.items():
            # {referer}i, {x-original-url}i and the like: headers that carry URLs.
            if name.startswith("{") and isinstance(value, str):
                atoms[name] = redact(value)
        return atoms

    def access(self, resp: Any, req: Any, environ: Any, request_time: Any) -> None:
        if not self.access_log_enabled:
            return
        safe = self.atoms_wrapper_class(self.atoms(resp, req, environ, request_time))
        try:
            line = self.cfg.access_log_format % safe
        except Exception:
            self.error(traceback.format_exc())
            return
        logger = self.access_log
        if logger.isEnabledFor(logging.INFO):
            # The atoms are redacted: a record that skips the RedactingFilter's second pass.
            record = logger.makeRecord(logger.name, logging.INFO, "(access)", 0, line, (), None)
            logger.callHandlers(record)
