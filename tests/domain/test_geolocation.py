"""The country estimated from an IP address, on this machine; addresses here are data only."""

from __future__ import annotations

import pytest

from app.domain.geolocation import estimate_country


@pytest.mark.parametrize(
    ("ip", "country"),
    [("193.99.144.80", "DE"), ("8.8.8.8", "US"), ("2a00:1450:4001:80b::200e", "DE")],
)
def test_a_public_address_gives_its_registered_country(ip: str, country: str) -> None:
    found = estimate_country(ip)
    assert found is not None
    assert (found.country, found.source) == (country, "ip_address")
    assert "geoip2fast" in found.method
    assert "no network call" in found.method


@pytest.mark.parametrize(
    "ip", [None, "", "garbage", "192.0.2.1", "198.51.100.7", "2001:db8::1", "10.0.0.1", "::1"]
)
def test_private_documentation_and_malformed_addresses_give_no_estimate(ip: str | None) -> None:
    assert estimate_country(ip) is None
