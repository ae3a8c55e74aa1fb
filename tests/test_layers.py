"""The import contract of docs/architecture.md: each layer imports only the layers below it.

Every `import` in every module counts, at module level or inside a function (a lazy import is still a
dependency, it is only paid later). Entry points (`__main__` modules, and the `pisim` package's own
`__init__`, whose `pisim.estimate()` is the one-call API over everything) sit above every layer.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("pisim", "cost_models", "optimizer")

# Bottom to top. A module belongs to the floor of the longest prefix that names it.
FLOORS = ("capture", "cost_models", "optimizer", "orchestrator", "report", "cli")
LAYER_OF_PREFIX = {
    "pisim.graph": "capture",
    "pisim.zoo": "capture",
    "pisim.loading": "capture",
    "pisim.archive": "capture",  # model files inspected before torch reads them
    "pisim.pt2": "capture",      # torch.export archives read without unpickling
    "pisim.errors": "capture",  # shared by every layer: the one exception type the CLIs turn into exit 2
    "pisim.io": "capture",      # shared by every layer: atomic writes
    "pisim.tomlparser": "capture",  # shared by every layer: tomllib, or tomli on Python 3.10
    "cost_models": "cost_models",
    "optimizer": "optimizer",
    "optimizer.search": "orchestrator",  # drives the strategies, so no strategy may import it back
    "pisim.report": "report",
    "pisim.cli": "cli",
}
ENTRY = "entry point"

# Known crossings, each to be deleted by the change that removes it. Keep this list short and commented.
ALLOWED: set[tuple[str, str]] = set()


@dataclass(frozen=True)
class Crossing:
    importer: str
    imported: str
    importer_layer: str
    imported_layer: str
    line: int

    def __str__(self) -> str:
        return (f"{self.importer} (layer {self.importer_layer}) imports {self.imported} (layer {self.imported_layer}) "
                f"at line {self.line}: a layer may import only the layers below it")


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(module: str) -> str | None:
    """The floor `module` sits on, ENTRY for entry points, None for modules outside the project."""
    if module.split(".")[-1] == "__main__" or module == "pisim":
        return ENTRY
    prefixes = [p for p in LAYER_OF_PREFIX if module == p or module.startswith(p + ".")]
    return LAYER_OF_PREFIX[max(prefixes, key=len)] if prefixes else None


def imports_of(tree: ast.AST, modules: set[str]) -> list[tuple[str, int]]:
    """(imported project module, line) for every import statement anywhere in `tree`."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from pisim import report` imports the submodule pisim.report, not only the package
            found += [(f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in modules else node.module,
                       node.lineno) for alias in node.names]
    return list(dict.fromkeys((name, line) for name, line in found if name.split(".")[0] in PACKAGES))


def crossings(root: Path, allowed: set[tuple[str, str]] = frozenset()) -> list[Crossing]:
    paths = [p for package in PACKAGES if (root / package).is_dir() for p in sorted((root / package).rglob("*.py"))]
    modules = {module_name(root, p) for p in paths}
    found = []
    for path in paths:
        importer = module_name(root, path)
        importer_layer = layer_of(importer)
        if importer_layer in (ENTRY, None):
            continue
        for imported, line in imports_of(ast.parse(path.read_text(), str(path)), modules):
            imported_layer = layer_of(imported) or importer_layer
            if imported_layer == ENTRY or FLOORS.index(imported_layer) > FLOORS.index(importer_layer):
                if not any(importer == a and (imported == b or imported.startswith(b + ".")) for a, b in allowed):
                    found.append(Crossing(importer, imported, importer_layer, imported_layer, line))
    return found


def test_every_module_imports_only_layers_below_it():
    found = crossings(ROOT, ALLOWED)
    assert not found, "layers cross:\n" + "\n".join(map(str, found))


def test_every_module_has_a_layer():
    paths = [p for package in PACKAGES for p in (ROOT / package).rglob("*.py")]
    unplaced = [module_name(ROOT, p) for p in paths if layer_of(module_name(ROOT, p)) is None]
    assert not unplaced, f"modules on no floor (add them to LAYER_OF_PREFIX): {unplaced}"


def test_allowed_crossings_still_exist():
    """An allow-list entry whose crossing is gone must be deleted, or the list silently grows a hole."""
    actual = {(c.importer, c.imported) for c in crossings(ROOT)}
    stale = [(a, b) for a, b in ALLOWED if not any(i == a and (j == b or j.startswith(b + ".")) for i, j in actual)]
    assert not stale, f"delete these ALLOWED entries, their crossing is gone: {stale}"


def test_pisim_package_init_imports_nothing_at_module_level():
    """Every `import pisim.graph` (capture, the bottom layer) runs pisim/__init__ first, so a module-level
    import there would put that import under every layer."""
    tree = ast.parse((ROOT / "pisim" / "__init__.py").read_text())
    eager = [node.lineno for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))
             and not (isinstance(node, ast.ImportFrom) and node.module in ("__future__", "typing"))]
    assert not eager, f"pisim/__init__.py imports at module level (lines {eager}); import inside estimate()"


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_checker_names_both_modules_and_layers_of_a_crossing(tmp_path):
    _write(tmp_path, {
        "pisim/__init__.py": "",
        "pisim/report/__init__.py": "class Table: ...\n",
        "cost_models/__init__.py": "",
        "cost_models/estimate.py": "def table():\n    from pisim.report import Table\n    return Table()\n",
        "cost_models/fine.py": "from cost_models import estimate\nfrom pisim.graph import OpGraph\n",
        "pisim/graph/__init__.py": "class OpGraph: ...\n",
    })
    found = crossings(tmp_path)
    assert [str(c) for c in found] == [
        "cost_models.estimate (layer cost_models) imports pisim.report (layer report) at line 2: "
        "a layer may import only the layers below it"]
    assert crossings(tmp_path, {("cost_models.estimate", "pisim.report")}) == []


def test_checker_sees_submodules_imported_by_from_and_the_entry_api(tmp_path):
    _write(tmp_path, {
        "pisim/__init__.py": "",
        "pisim/cli/__init__.py": "",
        "pisim/cli/common.py": "",
        "pisim/graph/__init__.py": "import pisim\n",
        "optimizer/__init__.py": "",
        "optimizer/strategies.py": "from pisim.cli import common\n",
        "optimizer/__main__.py": "from pisim.cli import common\n",
    })
    assert sorted((c.importer, c.imported, c.imported_layer) for c in crossings(tmp_path)) == [
        ("optimizer.strategies", "pisim.cli.common", "cli"),
        ("pisim.graph", "pisim", ENTRY)]
