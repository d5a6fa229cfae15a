"""The arrows of docs/architecture.md, read from the source: the science imports nothing of the service, and the
services never import the HTTP layer (only the routers, the HTTP edge, do)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

APP = Path(__file__).resolve().parents[2] / "app"


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at any depth (function-level imports too), as dotted names."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def offenders(room: str, forbidden: tuple[str, ...], allowed_files: tuple[str, ...] = ()) -> dict[str, list[str]]:
    found = {}
    for path in sorted((APP / room).rglob("*.py")):
        if path.name in allowed_files:
            continue
        bad = sorted(
            name for name in imported_modules(path) if any(name == f or name.startswith(f"{f}.") for f in forbidden)
        )
        if bad:
            found[str(path.relative_to(APP.parent))] = bad
    return found


SERVICE = ("fastapi", "starlette", "sqlalchemy", "app.db", "app.api", "app.jobs", "app.owners", "app.dashboard")


@pytest.mark.parametrize("room", ["tuning", "reports"])
def test_the_science_and_the_reports_import_nothing_of_the_service(room: str) -> None:
    assert offenders(room, SERVICE) == {}


@pytest.mark.parametrize("room", ["datasets", "jobs", "owners", "core"])
def test_only_routers_import_the_http_layer(room: str) -> None:
    assert offenders(room, ("app.api", "app.dashboard"), allowed_files=("router.py",)) == {}


def test_the_check_sees_function_level_imports(tmp_path: Path) -> None:
    source = tmp_path / "module.py"
    source.write_text("def f():\n    from app.api.deps import SessionDep\n    import sqlalchemy.orm\n")
    assert imported_modules(source) >= {"app.api.deps", "app.api.deps.SessionDep", "sqlalchemy.orm"}
