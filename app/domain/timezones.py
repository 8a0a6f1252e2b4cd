"""The person's time zone, when the country says it without doubt; UTC otherwise.

A country whose zones all keep the same offset today (Germany, Italy) has one answer; one
that spans several offsets (Spain with the Canaries, the United States) has none, and the
pages then show UTC and say so rather than guess.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pytz


def zone_for_country(country: str | None, now: datetime) -> str | None:
    if not country:
        return None
    names = pytz.country_timezones.get(country.upper(), [])
    try:
        offsets = {now.astimezone(ZoneInfo(name)).utcoffset() for name in names}
    except ZoneInfoNotFoundError:
        return None
    return str(names[0]) if len(offsets) == 1 else None
