"""Signatures, the retention base rule, and the dates and chart the DPO sees."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from joserfc.jwk import ECKey

from app.domain import proof
from app.domain.chain import GENESIS_HASH
from app.domain.chart import grouped_bars
from app.services.privacy_center.rights import due_date


@pytest.fixture(scope="module")
def key() -> ECKey:
    return ECKey.generate_key("P-256", auto_kid=True)


def test_signed_claims_open_with_the_public_key_only(key: ECKey) -> None:
    token = proof.sign({"seq": 7, "hash": "ab"}, key)
    public = proof.key_set({"keys": [key.as_dict(private=False)]})
    assert proof.open_signed(token, public) == {"seq": 7, "hash": "ab"}
    other = proof.key_set(ECKey.generate_key("P-256", auto_kid=True).as_dict(private=False))
    assert proof.open_signed(token, other) is None
    head, body, signature = token.split(".")
    assert proof.open_signed(f"{head}.{body}x.{signature}", public) is None


def test_the_base_is_genesis_until_a_retention_run_records_another() -> None:
    assert proof.base_problem(0, GENESIS_HASH, None) is None
    moved = proof.base_problem(5, "f" * 64, None)
    assert moved is not None
    assert moved.first_bad_seq == 5
    recorded = {"base_seq": 5, "base_hash": "f" * 64}
    assert proof.base_problem(5, "f" * 64, recorded) is None
    hidden = proof.base_problem(6, "e" * 64, recorded)
    assert hidden is not None
    assert hidden.first_bad_seq == 6


def test_an_empty_or_headless_package_fails(key: ECKey) -> None:
    public = proof.key_set(key.as_dict(private=False))
    assert not proof.verify_package([], public).is_ok
    assert not proof.verify_package(['{"type":"event","seq":1}\n'], public).is_ok


@pytest.mark.parametrize(
    ("received", "due"),
    [
        (datetime(2026, 1, 15, 9, tzinfo=UTC), datetime(2026, 2, 15, 9, tzinfo=UTC)),
        (datetime(2026, 1, 31, 9, tzinfo=UTC), datetime(2026, 2, 28, 9, tzinfo=UTC)),
        (datetime(2026, 12, 10, 9, tzinfo=UTC), datetime(2027, 1, 10, 9, tzinfo=UTC)),
    ],
)
def test_a_rights_request_is_due_one_month_after_receipt(received: datetime, due: datetime) -> None:
    assert due_date(received) == due


def test_the_chart_scales_bars_to_the_largest_count() -> None:
    chart = grouped_bars("newsletter", ["2026-01", "2026-02"], {"2026-02": (4, 2)})
    heights = {(b.label): b.height for b in chart.bars}
    assert heights["2026-01: 0 granted"] == 0
    assert heights["2026-02: 4 granted"] == 2 * heights["2026-02: 2 withdrawn"]
    assert (chart.total_granted, chart.total_withdrawn) == (4, 2)
