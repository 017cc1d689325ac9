"""Imports run one way: desk -> services -> shared. shared/ imports no service and not the `desk` command;
a service imports shared/ and itself, never another service's modules (what they exchange is a contract in
shared/contracts/). Read with ast, like the purity test of shared/domain, so an import inside a function counts."""

import ast
from pathlib import Path

import desk
import services
import shared

ROOT = Path(shared.__file__).parent.parent
PACKAGES = {
    "shared": Path(shared.__file__).parent,
    "services": Path(services.__file__).parent,
    "desk": Path(desk.__file__).parent,
}
SERVICES = ("intake", "evaluation", "monitoring")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(tree: ast.AST, module: str, is_package: bool = False) -> list[str]:
    """Every module name an import statement reaches, relative imports resolved against `module`."""
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join([*anchor, base] if base else anchor)
            names.append(base)
            names.extend(f"{base}.{alias.name}" for alias in node.names)
    return names


def _owner(module: str) -> str:
    """Who a module belongs to: "shared", "desk", "services.<name>", or "services" for the package's own files."""
    parts = module.split(".")
    if parts[0] == "services" and len(parts) > 1:
        return f"services.{parts[1]}"
    return parts[0]


def _wrong(importer: str, imported: str) -> bool:
    src, dst = _owner(importer), _owner(imported)
    if dst not in ("desk", "services") and not dst.startswith("services."):
        return False  # shared, the standard library, third parties: anyone may import them
    if src == "shared":
        return True  # the library imports no service and not the command above them
    if src.startswith("services.") or src == "services":
        return dst == "desk" or (dst != src and imported != "services")
    return False  # desk is the composition root: it may import everything


def _scan() -> dict[str, list[tuple[str, str]]]:
    """Per top-level package, every (importing module, imported name) pair found."""
    found: dict[str, list[tuple[str, str]]] = {}
    for package, directory in PACKAGES.items():
        pairs = found.setdefault(package, [])
        for path in sorted(directory.rglob("*.py")):
            module = _module_name(path)
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            pairs.extend((module, name) for name in _imports(tree, module, path.name == "__init__.py"))
    return found


def test_scanner_reads_real_imports_of_every_package() -> None:
    found = _scan()
    assert {p for p in PACKAGES if any(n.startswith("shared.") for _, n in found[p])} == set(PACKAGES)
    for service in SERVICES:
        own = [n for m, n in found["services"] if _owner(m) == f"services.{service}"]
        assert any(n.startswith("shared.") for n in own), service
        assert any(n.startswith(f"services.{service}.") for n in own), service
    assert any(_owner(n) == "services.intake" for _, n in found["desk"])


def test_imports_run_one_way() -> None:
    offenders = [f"{module}: {name}" for pairs in _scan().values() for module, name in pairs if _wrong(module, name)]
    assert offenders == []


def _flagged(source: str, importer: str) -> list[str]:
    return [n for n in _imports(ast.parse(source), importer) if _wrong(importer, n)]


def test_checker_catches_back_and_cross_imports() -> None:
    source = (
        "import os\n"
        "from shared.db import Base\n"
        "from services.intake.calls.schemas import CallDetail\n"
        "from services import evaluation\n"
        "from desk import cli\n"
        "from ...evaluation.budget import schemas\n"
        "from .peers import intake_client\n"
        "def late():\n"
        "    import services.monitoring.models\n"
    )
    assert _flagged(source, "services.monitoring.stats.service") == [
        "services.intake.calls.schemas",
        "services.intake.calls.schemas.CallDetail",
        "services.evaluation",
        "desk",
        "desk.cli",
        "services.evaluation.budget",
        "services.evaluation.budget.schemas",
    ]
    assert _flagged(source, "shared.clients.intake") == [
        "services.intake.calls.schemas",
        "services.intake.calls.schemas.CallDetail",
        "services",
        "services.evaluation",
        "desk",
        "desk.cli",
        "services.monitoring.models",
    ]
    assert (
        _flagged("from services.intake.models import Call\nfrom . import schemas\n", "services.intake.calls.service")
        == []
    )
    assert _flagged("from services.intake.calls import schemas\nimport shared.db\n", "desk.cli") == []
