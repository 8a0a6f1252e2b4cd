"""Plain-text checks shared by every input path (API bodies and query strings, imported rows)."""

from __future__ import annotations


def is_utf8(text: str) -> bool:
    """False for a string holding lone surrogates: it cannot be stored or sent as UTF-8."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
