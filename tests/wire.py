"""What a time looks like on the wire: RFC 3339 in UTC, spelt with `Z`."""

from __future__ import annotations

import re

# A time of day followed by a numeric offset: "09:00:00+00:00", "09:00:00.123-05:00".
OFFSET_TIME = re.compile(r"\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?[+-]\d{2}:?\d{2}\b")
UTC_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?Z")


def offset_times(text: str) -> list[str]:
    """Every time in `text` written with an offset instead of `Z`."""
    return OFFSET_TIME.findall(text)
