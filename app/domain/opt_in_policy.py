"""The shipped double opt-in policy: countries where single opt-in may not be configured."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from pathlib import Path

import yaml

POLICY_PATH = Path(__file__).parent.parent / "data" / "opt_in_policy.yaml"


def load_policy(path: Path = POLICY_PATH) -> dict[str, str]:
    """Country code -> why double opt-in is required there."""
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return {str(k).upper(): str(v) for k, v in (raw.get("double_opt_in_required") or {}).items()}


def refusals(
    single_opt_in: Collection[str], overrides: Collection[str], policy: Mapping[str, str]
) -> list[str]:
    """One message per country configured for single opt-in that the policy forbids."""
    allowed = {c.upper() for c in overrides}
    return [
        f"SINGLE_OPT_IN_COUNTRIES names {country}, where double opt-in is required "
        f"({policy[country]}). Remove it, or set SINGLE_OPT_IN_OVERRIDE={country} to take "
        "that decision explicitly."
        for country in sorted({c.upper() for c in single_opt_in})
        if country in policy and country not in allowed
    ]
