"""The layers of docs/architecture.md hold in the imports: every import of every module, read with ast.

Imports inside functions (lazy ones) and under ``TYPE_CHECKING`` count the same as the others: a lazy
import still ties the packages together, and a type-only one still says which concepts know which.
The table below is the one in docs/architecture.md; a test checks that the two say the same.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("flowkit", "conductor")

# layer: (the modules in it, by name prefix; the layers it may import besides itself)
LAYERS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "foundation": (
        (
            "flowkit.exceptions",
            "flowkit.failure",
            "flowkit.states",
            "flowkit.notifier",
            "flowkit.context",
            "flowkit.names",
            "flowkit.extras",
            "flowkit.types",
        ),
        (),
    ),
    "model": (
        ("flowkit.atom", "flowkit.task", "flowkit.retry", "flowkit.flow", "flowkit.patterns"),
        ("foundation",),
    ),
    "sql": (("flowkit.sql",), ("foundation",)),
    "compiler": (("flowkit.compiler",), ("foundation", "model")),
    "storage": (("flowkit.storage",), ("foundation", "model", "compiler")),
    "persistence": (
        ("flowkit.persistence", "flowkit.utils"),
        ("foundation", "sql", "model", "compiler", "storage"),
    ),
    "factory": (("flowkit.factory",), ("foundation", "sql", "model", "compiler", "storage", "persistence")),
    "engines": (
        ("flowkit.engines",),
        ("foundation", "sql", "model", "compiler", "storage", "persistence", "factory"),
    ),
    "jobboard": (
        ("flowkit.jobboard", "flowkit.jobs"),
        ("foundation", "sql", "model", "compiler", "storage", "persistence", "factory"),
    ),
    "workers": (
        ("flowkit.workers", "flowkit.engines.worker_based"),
        ("foundation", "sql", "model", "compiler", "storage", "persistence", "factory", "engines"),
    ),
    "listeners": (
        ("flowkit.listeners",),
        ("foundation", "sql", "model", "compiler", "storage", "persistence", "factory", "engines"),
    ),
    "applications": (
        (
            "flowkit.cli",
            "flowkit.demo",
            "flowkit.__main__",
            "flowkit.conductors",
            "flowkit.serve",
            "conductor",
        ),
        (
            "foundation",
            "sql",
            "model",
            "compiler",
            "storage",
            "persistence",
            "factory",
            "engines",
            "jobboard",
            "workers",
            "listeners",
            "facade",
        ),
    ),
    "facade": (
        ("flowkit",),  # the package's own __init__: re-exports the public names, imported by nothing inside
        ("foundation", "sql", "model", "compiler", "storage", "persistence", "factory", "engines"),
    ),
}


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(module: str) -> str | None:
    """The layer whose longest prefix names ``module``; the facade is ``flowkit`` itself, no submodule."""
    best, best_len = None, -1
    for layer, (prefixes, _) in LAYERS.items():
        for prefix in prefixes:
            inside = module == prefix or (layer != "facade" and module.startswith(prefix + "."))
            if inside and len(prefix) > best_len:
                best, best_len = layer, len(prefix)
    return best


def _is_submodule(root: Path, package: str, name: str) -> bool:
    base = root.joinpath(*package.split("."), name)
    return base.with_suffix(".py").exists() or (base / "__init__.py").exists()


def imports(path: Path, root: Path) -> Iterator[tuple[int, str]]:
    """(line, module) for every import in ``path`` of one of our packages, wherever it is written.

    ``from flowkit import extras`` imports the submodule ``flowkit.extras``, not the facade; only a
    name the package's ``__init__`` defines (``from flowkit import Task``) is an import of the facade.
    """
    module = module_name(path, root)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            for alias in node.names:
                if _is_submodule(root, source, alias.name):
                    yield node.lineno, f"{source}.{alias.name}"
                else:
                    yield node.lineno, source


def violations(root: Path) -> list[str]:
    """Every import that crosses the layers, and every module that belongs to no layer."""
    found = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            module = module_name(path, root)
            layer = layer_of(module)
            if layer is None:
                found.append(f"{module}: in no layer (add it to docs/architecture.md and this test)")
                continue
            allowed = {layer, *LAYERS[layer][1]}
            for line, target in sorted(imports(path, root)):
                if target.split(".")[0] not in PACKAGES:
                    continue
                target_layer = layer_of(target)
                if target_layer not in allowed:
                    where = f"{path.relative_to(root)}:{line}"
                    found.append(f"{where}: {module} ({layer}) imports {target} ({target_layer})")
    return found


def test_every_import_stays_inside_the_layers() -> None:
    assert violations(ROOT) == []


def test_the_checker_sees_lazy_and_type_only_imports(tmp_path: Path) -> None:
    """A check that finds nothing must be able to find something: plant crossings and see each named."""
    for package in PACKAGES:
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    jobboard = tmp_path / "flowkit" / "jobboard"
    jobboard.mkdir()
    (jobboard / "__init__.py").write_text("")
    (jobboard / "posting.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from flowkit.engines.engine import Engine\n"
        "def post():\n    from ..workers import engine\n    import flowkit.engines.persistence\n"
        "from flowkit import Task\n"
    )
    (tmp_path / "flowkit" / "gadgets.py").write_text("")
    found = violations(tmp_path)
    assert [v.split(": ", 1)[1] for v in found if "posting" in v] == [
        "flowkit.jobboard.posting (jobboard) imports flowkit.engines.engine (engines)",
        "flowkit.jobboard.posting (jobboard) imports flowkit.workers (workers)",
        "flowkit.jobboard.posting (jobboard) imports flowkit.engines.persistence (engines)",
        "flowkit.jobboard.posting (jobboard) imports flowkit (facade)",
    ]
    assert "flowkit.gadgets: in no layer (add it to docs/architecture.md and this test)" in found


def _doc_table() -> dict[str, tuple[set[str], set[str]]]:
    """The layers table of docs/architecture.md: layer -> (module prefixes, layers it may import)."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or not line.startswith("|") or cells[0] in ("layer", "") or set(cells[0]) <= {"-"}:
            continue
        modules = set(re.findall(r"`([\w.]+)`", cells[1]))
        may = set() if cells[2] in ("nothing", "-") else {c.strip() for c in cells[2].split(",")}
        rows[cells[0]] = (modules, may)
    return rows


def test_the_doc_and_this_table_say_the_same() -> None:
    table = {layer: (set(prefixes), set(may)) for layer, (prefixes, may) in LAYERS.items()}
    assert _doc_table() == table


@pytest.mark.parametrize("kind", ["serial", "parallel", "worker-based"])
def test_engine_kinds_are_registered_by_name(kind: str) -> None:
    """The worker-based engine is found by name without flowkit.engines importing flowkit.workers."""
    from flowkit.engines import kinds

    assert kind in kinds.names()
    loader = kinds.kind(kind).loader
    assert isinstance(loader, str) == (kind == "worker-based")
