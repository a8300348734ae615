"""Every package declares what it imports.

The development venv installs all packages together, so a service that imports a
library only another package declares works here and breaks in its own container image
(which installs that one service). This test reads each package's ``src`` imports, maps
each top-level module to the distribution that provides it, and requires that
distribution in the package's ``[project] dependencies`` (or in one of its optional
extras, for imports guarded by that extra). It also requires every declared dependency to
be pinned in ``constraints.txt``.
"""

import ast
import importlib.metadata
import re
import sys
import tomllib
from functools import cache
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
PACKAGE_DIRS = [
    *sorted(path.parent for path in REPO_ROOT.glob("libs/*/pyproject.toml")),
    *sorted(path.parent for path in REPO_ROOT.glob("services/*/pyproject.toml")),
    REPO_ROOT / "sandbox",
    REPO_ROOT / "scripts" / "stack",
    REPO_ROOT / "scripts" / "seed",
]


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(requirement: str) -> str:
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    assert match, requirement
    return _normalise(match.group(1))


@cache
def _module_distributions() -> dict[str, set[str]]:
    return {
        module: {_normalise(dist) for dist in dists}
        for module, dists in importlib.metadata.packages_distributions().items()
    }


@cache
def _pinned() -> set[str]:
    names = set()
    for line in (REPO_ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            assert "==" in line, f"constraints.txt: {line!r} is not a name==version pin"
            names.add(_requirement_name(line))
    return names


def _project(package_dir: Path) -> dict[str, object]:
    project: dict[str, object] = tomllib.loads((package_dir / "pyproject.toml").read_text())[
        "project"
    ]
    return project


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node of ``tree`` except those under ``if TYPE_CHECKING:`` (never imported)."""
    nodes: list[ast.AST] = []
    pending = [tree]
    while pending:
        node = pending.pop()
        nodes.append(node)
        if isinstance(node, ast.If) and ast.unparse(node.test).endswith("TYPE_CHECKING"):
            pending.extend(node.orelse)
            continue
        pending.extend(ast.iter_child_nodes(node))
    return nodes


def _top_level_imports(package_dir: Path) -> dict[str, Path]:
    """Absolute runtime imports of ``src``: top-level module name -> a file importing it."""
    found: dict[str, Path] = {}
    for source in sorted((package_dir / "src").rglob("*.py")):
        for node in _runtime_nodes(ast.parse(source.read_text(), filename=str(source))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".", 1)[0], source)
    return found


def _own_modules(package_dir: Path) -> set[str]:
    return {path.parent.name for path in (package_dir / "src").glob("*/__init__.py")}


@pytest.mark.parametrize("package_dir", PACKAGE_DIRS, ids=lambda path: path.name)
def test_every_third_party_import_is_a_declared_dependency(package_dir: Path) -> None:
    project = _project(package_dir)
    declared = {_requirement_name(req) for req in project.get("dependencies", [])}  # type: ignore[attr-defined]
    for extra in project.get("optional-dependencies", {}).values():  # type: ignore[attr-defined]
        declared |= {_requirement_name(req) for req in extra}
    own = _own_modules(package_dir)

    undeclared = []
    for module, source in sorted(_top_level_imports(package_dir).items()):
        if module in own or module in sys.stdlib_module_names:
            continue
        providers = _module_distributions().get(module)
        assert providers, f"{source.relative_to(REPO_ROOT)} imports {module!r}: not installed"
        if not providers & declared:
            undeclared.append(f"{module} ({'/'.join(sorted(providers))}) in {source.name}")
    assert not undeclared, f"{package_dir.name} imports undeclared packages: {undeclared}"


@pytest.mark.parametrize("package_dir", PACKAGE_DIRS, ids=lambda path: path.name)
def test_every_declared_dependency_is_pinned_or_ours(package_dir: Path) -> None:
    ours = {_normalise(_project(path)["name"]) for path in PACKAGE_DIRS}  # type: ignore[arg-type]
    project = _project(package_dir)
    requirements = list(project.get("dependencies", []))  # type: ignore[call-overload]
    for extra in project.get("optional-dependencies", {}).values():  # type: ignore[attr-defined]
        requirements += extra
    unpinned = [req for req in requirements if _requirement_name(req) not in _pinned() | ours]
    assert not unpinned, f"{package_dir.name}: not pinned in constraints.txt: {unpinned}"
