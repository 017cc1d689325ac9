"""shared/domain must stay pure: no web framework, ORM, HTTP client, driver or settings."""

import ast
from pathlib import Path

import shared.domain

FORBIDDEN_ROOTS = {"fastapi", "starlette", "sqlalchemy", "httpx", "asyncpg", "services"}
FORBIDDEN_PREFIXES = ("shared.settings", "shared.db")

DOMAIN_DIR = Path(shared.domain.__file__).parent


def _imports(tree: ast.AST) -> list[str]:
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None and node.level == 0:
            names.append(node.module)
            names.extend(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _forbidden(name: str) -> bool:
    return name.split(".")[0] in FORBIDDEN_ROOTS or any(
        name == p or name.startswith(p + ".") for p in FORBIDDEN_PREFIXES
    )


def test_domain_modules_exist() -> None:
    assert len(list(DOMAIN_DIR.rglob("*.py"))) >= 7


def test_domain_imports_nothing_impure() -> None:
    offenders = [
        f"{path.relative_to(DOMAIN_DIR)}: {name}"
        for path in sorted(DOMAIN_DIR.rglob("*.py"))
        for name in _imports(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
        if _forbidden(name)
    ]
    assert offenders == []


def test_checker_catches_offenders() -> None:
    tree = ast.parse("import fastapi\nfrom shared import settings\nfrom sqlalchemy.orm import Session\n")
    assert [n for n in _imports(tree) if _forbidden(n)] == [
        "fastapi",
        "shared.settings",
        "sqlalchemy.orm",
        "sqlalchemy.orm.Session",
    ]
