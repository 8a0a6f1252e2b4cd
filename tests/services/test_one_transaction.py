"""One use case, one transaction: read from the source of app/services/.

A function that calls `session.commit()` is a use case. It commits once, as its last act before
returning, and nothing in app/services/ calls it: composition goes through functions that write
in the caller's transaction and leave the commit to it. Nothing in app/services/ rolls back.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

SERVICES = Path(__file__).parent.parent.parent / "app" / "services"
# Each of these commits once per item of a batch, so a crash never redoes what went out.
BATCHES = {"app.services.delivery.mail.deliver_due"}
# SQLite cannot upgrade a read transaction to a write one: the lock ends the reads before it,
# and refuses to run once the use case has written anything.
READ_ENDS = {"app.services.consent.ledger.lock"}

Function = ast.FunctionDef


def _modules() -> Iterator[tuple[str, ast.Module]]:
    for path in sorted(SERVICES.rglob("*.py")):
        parts = path.relative_to(SERVICES.parent.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        yield name, ast.parse(path.read_text(encoding="utf-8"))


def _session_calls(node: ast.AST, method: str) -> list[ast.Call]:
    return [
        call
        for call in ast.walk(node)
        if isinstance(call, ast.Call)
        and isinstance(call.func, ast.Attribute)
        and call.func.attr == method
        and isinstance(call.func.value, ast.Name)
        and call.func.value.id == "session"
    ]


def _functions() -> dict[str, tuple[str, Function, dict[str, str]]]:
    """Every top-level function by its dotted name, with its module's import names."""
    found: dict[str, tuple[str, Function, dict[str, str]]] = {}
    for module, tree in _modules():
        names: dict[str, str] = {}
        for node in tree.body:
            if isinstance(node, ast.ImportFrom) and node.module:
                for alias in node.names:
                    names[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        for node in tree.body:
            if isinstance(node, ast.FunctionDef):
                names.setdefault(node.name, f"{module}.{node.name}")
        for node in tree.body:
            if isinstance(node, ast.FunctionDef):
                found[f"{module}.{node.name}"] = (module, node, names)
    return found


def _callees(function: Function, names: dict[str, str]) -> set[str]:
    called = set()
    for call in ast.walk(function):
        if not isinstance(call, ast.Call):
            continue
        if isinstance(call.func, ast.Name) and call.func.id in names:
            called.add(names[call.func.id])
        elif (
            isinstance(call.func, ast.Attribute)
            and isinstance(call.func.value, ast.Name)
            and call.func.value.id in names
        ):
            called.add(f"{names[call.func.value.id]}.{call.func.attr}")
    return called


def _commits_last(function: Function) -> bool:
    """The commit is a statement of the function's own body, followed only by a return."""
    body = function.body
    for index, statement in enumerate(body):
        if _session_calls(statement, "commit"):
            is_statement = isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Call)
            rest = body[index + 1 :]
            return is_statement and all(isinstance(s, ast.Return) for s in rest)
    return False


def test_each_use_case_commits_once_as_its_last_act() -> None:
    wrong = [
        name
        for name, (_, function, _) in _functions().items()
        if name not in BATCHES | READ_ENDS
        and _session_calls(function, "commit")
        and (len(_session_calls(function, "commit")) != 1 or not _commits_last(function))
    ]
    assert wrong == []


def test_only_public_functions_commit() -> None:
    wrong = [
        name
        for name, (_, function, _) in _functions().items()
        if function.name.startswith("_") and _session_calls(function, "commit")
    ]
    assert wrong == []


def test_no_service_calls_a_use_case() -> None:
    functions = _functions()
    use_cases = {
        name
        for name, (_, function, _) in functions.items()
        if name not in READ_ENDS and _session_calls(function, "commit")
    }
    wrong = sorted(
        f"{name} -> {callee}"
        for name, (_, function, names) in functions.items()
        for callee in _callees(function, names) & use_cases
    )
    assert wrong == []


def test_no_service_rolls_back_its_callers_transaction() -> None:
    wrong = [
        name
        for name, (_, function, _) in _functions().items()
        if _session_calls(function, "rollback")
    ]
    assert wrong == []
