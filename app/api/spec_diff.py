"""What two OpenAPI documents say differently, meaning for meaning: references resolved, a lone
`allOf` or a nullable `anyOf` unwrapped, parameters and `required` compared as sets. For
folding a hand-edited openapi.yaml into the generated one (`consent-center openapi --compare`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

NULL_OBJECT = {"type": "object", "nullable": True}  # how apispec spells a nullable nested schema
# What a generated document adds that changes no meaning (open objects, null defaults).
SILENT: tuple[dict[str, Any], ...] = (
    {"additionalProperties": {}},
    {"default": None},
    {"required": False},
)


def _resolve(document: dict[str, Any], node: Any) -> Any:
    if isinstance(node, list):
        return [_resolve(document, item) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target: Any = document
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        siblings = {k: v for k, v in node.items() if k != "$ref"}
        return _resolve(document, {**target, **siblings})
    node = {key: _resolve(document, value) for key, value in node.items()}
    choices = node.get("anyOf")
    if isinstance(choices, list) and len(choices) == 2 and NULL_OBJECT in choices:
        (other,) = [c for c in node.pop("anyOf") if c != NULL_OBJECT]
        node = {**other, **node, "nullable": True}
    if isinstance(node.get("allOf"), list) and len(node["allOf"]) == 1:
        node = {**node.pop("allOf")[0], **node}
    if isinstance(node.get("parameters"), list):
        node["parameters"] = {f"{p['in']} {p['name']}": p for p in node["parameters"]}
    if isinstance(node.get("required"), list):
        node["required"] = sorted(node["required"])
    return node


def _operations(document: dict[str, Any]) -> dict[str, Any]:
    """Each operation with its path's parameters, so where a parameter is declared is moot."""
    found = {}
    for path, item in document.get("paths", {}).items():
        shared = item.get("parameters", [])
        for method, operation in item.items():
            if method == "parameters":
                continue
            parameters = shared + operation.get("parameters", [])
            found[f"{method.upper()} {path}"] = operation | (
                {"parameters": parameters} if parameters else {}
            )
    return found


def _compare(old: Any, new: Any, where: str) -> Iterator[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(old.keys() | new.keys(), key=str):
            here = f"{where}/{key}"
            if key not in new:
                yield f"- {here}: {json.dumps(old[key])}"
            elif key not in old:
                if {key: new[key]} not in SILENT:
                    yield f"+ {here}: {json.dumps(new[key])}"
            else:
                yield from _compare(old[key], new[key], here)
    elif old != new and not (
        isinstance(old, str) and isinstance(new, str) and old.rstrip() == new.rstrip()
    ):  # a YAML block's final line break is layout
        yield f"~ {where}: {json.dumps(old)} -> {json.dumps(new)}"


def _components_of(document: dict[str, Any], names: dict[str, Any]) -> dict[str, Any]:
    """The components named in `names` (section by section): the generator names more of
    them (a nested schema is its own), which the operations already compare."""
    held = document.get("components", {})
    return {
        section: {name: held[section][name] for name in named if name in held.get(section, {})}
        for section, named in names.items()
    }


def differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """`- where: value` said only by `old`, `+` only by `new`, `~` said otherwise."""
    named = old.get("components", {})
    parts = (
        ("", _operations(old), _operations(new)),
        ("#/info", old.get("info", {}), new.get("info", {})),
        ("#/tags", old.get("tags", []), new.get("tags", [])),
        ("#/components", _components_of(old, named), _components_of(new, named)),
    )
    return [
        line
        for where, a, b in parts
        for line in _compare(_resolve(old, a), _resolve(new, b), where)
    ]
