"""app/api/spec_diff: differences in meaning between two OpenAPI documents, not in spelling."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from app.api.spec_diff import differences

OPENAPI = Path(__file__).resolve().parents[2] / "openapi.yaml"


def _committed() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(OPENAPI.read_text(encoding="utf-8"))
    return loaded


def test_a_document_says_what_it_says() -> None:
    assert differences(_committed(), _committed()) == []


def test_a_reference_and_its_target_written_out_mean_the_same() -> None:
    inline = _committed()
    check = inline["paths"]["/v1/consent/check"]["get"]
    check["responses"]["401"] = copy.deepcopy(inline["components"]["responses"]["Unauthorized"])
    check["parameters"] = list(reversed(check["parameters"]))

    assert differences(_committed(), inline) == []


def test_a_hand_written_operation_the_generator_lacks_is_listed() -> None:
    hand_edited = _committed()
    hand_edited["paths"]["/v1/widgets"] = {"get": {"responses": {"200": {"description": "W."}}}}
    hand_edited["components"]["schemas"]["Name"]["description"] = "Another text."

    found = differences(hand_edited, _committed())

    assert '- /GET /v1/widgets: {"responses": {"200": {"description": "W."}}}' in found
    assert (
        '~ #/components/schemas/Name/description: "Another text." -> '
        '"A channel, category or purpose name of the catalog."'
    ) in found
    # ...and wherever the shape is used, since references are resolved.
    assert any(line.startswith("~ /GET /v1/consent/check/parameters") for line in found)
