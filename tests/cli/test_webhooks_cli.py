"""`consent-center webhooks`: add, list, rotate-secret, deliveries, remove."""

from __future__ import annotations

import json
from collections.abc import Callable

from click.testing import Result


def test_an_operator_manages_receivers_from_the_shell(cli: Callable[..., Result]) -> None:
    added = cli("webhooks", "add", "https://hooks.example.org/in", "--events", "subject.erased")
    assert added.exit_code == 0, added.output
    made = json.loads(added.output)
    assert made["secret"].startswith("whsec_")
    assert made["events"] == ["subject.erased"]

    listed = [json.loads(line) for line in cli("webhooks", "list").output.splitlines()]
    assert [w["id"] for w in listed] == [made["id"]]
    assert "secret" not in listed[0]
    rotated = json.loads(cli("webhooks", "rotate-secret", made["id"]).output)
    assert rotated["secret"] != made["secret"]
    assert cli("webhooks", "deliveries", made["id"]).output == ""
    assert cli("webhooks", "remove", made["id"]).exit_code == 0
    assert cli("webhooks", "list").output == ""


def test_a_refused_receiver_is_a_readable_error(cli: Callable[..., Result]) -> None:
    refused = cli("webhooks", "add", "http://10.0.0.1/in")
    assert refused.exit_code != 0
    assert "https" in refused.output
    missing = cli("webhooks", "remove", "no-such-id")
    assert missing.exit_code != 0
    assert "No webhook" in missing.output
