"""The shipped double opt-in policy: which countries may not be set to single opt-in."""

from __future__ import annotations

from app.domain.opt_in_policy import load_policy, refusals


def test_the_shipped_policy_requires_double_opt_in_in_de_it_ca_kr() -> None:
    assert {"DE", "IT", "CA", "KR"} <= set(load_policy())


def test_single_opt_in_for_a_double_opt_in_country_is_refused_naming_it() -> None:
    (message,) = refusals({"de", "US"}, set(), load_policy())
    assert "DE" in message
    assert "SINGLE_OPT_IN_OVERRIDE=DE" in message


def test_an_explicit_override_lets_it_through() -> None:
    assert refusals({"DE"}, {"de"}, load_policy()) == []
    assert refusals({"US", "GB"}, set(), load_policy()) == []
