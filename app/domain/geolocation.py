"""The country estimated from an IP address, looked up on this machine.

The database is the one geoip2fast ships inside its PyPI package (MIT licence, built from
public registry data): no call leaves the machine. An estimate is a derived datum, and the
person is shown it as estimated, with the source and method recorded here.
"""

from __future__ import annotations

import functools
import ipaddress
from dataclasses import dataclass
from importlib.metadata import version
from typing import Any

SOURCE = "ip_address"
# The IPv6 file of geoip2fast also holds every IPv4 network.
DATABASE_FILE = "geoip2fast-ipv6.dat.gz"


@dataclass(frozen=True)
class Estimate:
    country: str  # ISO 3166-1 alpha-2
    source: str
    method: str


def method() -> str:
    return f"offline country database (geoip2fast {version('geoip2fast')}), no network call"


@functools.cache
def _database() -> Any:
    from geoip2fast import GeoIP2Fast

    return GeoIP2Fast(geoip2fast_data_file=DATABASE_FILE)


def estimate_country(ip: str | None) -> Estimate | None:
    """The country an address is registered in, or None for private, reserved or unknown ones."""
    if not ip:
        return None
    try:
        address = ipaddress.ip_address(ip.strip())
    except ValueError:
        return None
    if not address.is_global:
        return None  # documentation, private and loopback ranges belong to no country
    code = str(_database().lookup(str(address)).country_code or "")
    if len(code) != 2 or not code.isalpha():
        return None  # geoip2fast answers "--" for networks it does not know
    return Estimate(country=code.upper(), source=SOURCE, method=method())
