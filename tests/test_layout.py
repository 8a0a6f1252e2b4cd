"""The folders are the architecture: no module reaches into another capability's internals."""

from __future__ import annotations

import ast
from pathlib import Path

APP = Path(__file__).parent.parent / "app"


def _capability(module: str) -> str:
    """app.services.optin.confirmation -> app.services.optin; app.web.privacy -> app.web."""
    parts = module.split(".")
    return ".".join(parts[:3]) if parts[:2] == ["app", "services"] else ".".join(parts[:2])


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def test_no_module_uses_another_capabilitys_private_names() -> None:
    wrong = []
    for path in sorted(APP.rglob("*.py")):
        here = ".".join(path.relative_to(APP.parent).with_suffix("").parts)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        modules: dict[str, str] = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("app"):
                for alias in node.names:
                    target = f"{node.module}.{alias.name}"
                    modules[alias.asname or alias.name] = target
                    if _private(alias.name) and _capability(node.module) != _capability(here):
                        wrong.append(f"{here} imports {target}")
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and _private(node.attr)
                and isinstance(node.value, ast.Name)
                and node.value.id in modules
                and _capability(modules[node.value.id]) != _capability(here)
            ):
                wrong.append(f"{here} uses {modules[node.value.id]}.{node.attr}")
    assert wrong == []
