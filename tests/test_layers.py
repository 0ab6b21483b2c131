"""The import rule of CONTRIBUTING, enforced: imports inside valuetrace point down the layers only.

cli → steps → analysis → probing → activations → training → foundations. A module may import
its own layer and the layers below it, never one above; the scan reads every module's `import`
statements (top-level and inside functions) with `ast`, so a lazy import counts too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# folder in the repository -> the package it installs as
FOLDERS = {
    "valuetrace": "valuetrace",
    "training": "valuetrace.training",
    "activations": "valuetrace.activations",
    "probing": "valuetrace.probing",
    "analysis": "valuetrace.analysis",
}
LAYERS = ["foundations", "training", "activations", "probing", "analysis", "steps", "cli"]
UPPER_VALUETRACE = {"valuetrace.cli": "cli", "valuetrace.api": "steps"}


def layer_of(module: str) -> str:
    """The layer a dotted module name of valuetrace belongs to."""
    parts = module.split(".")
    if len(parts) > 1 and parts[1] in ("training", "activations", "probing", "analysis"):
        return parts[1]
    if len(parts) > 1 and parts[1] in ("steps", "corpora"):
        return "steps"
    return UPPER_VALUETRACE.get(".".join(parts[:2]), "foundations")


def modules() -> dict[str, Path]:
    """Every module of the installed package, by dotted name, from its folder in the repo."""
    found = {}
    for folder, package in FOLDERS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT / folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            found[".".join([package, *parts])] = path
    return found


def imported(path: Path, module: str) -> list[tuple[int, str]]:
    """(line, absolute module name) of every valuetrace import in a file."""
    tree = ast.parse(path.read_text())
    is_package = path.name == "__init__.py"
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                name = ".".join([*base, *([node.module] if node.module else [])])
            else:
                name = node.module or ""
            out.append((node.lineno, name))
    return [(line, name) for line, name in out if name.split(".")[0] == "valuetrace"]


def test_no_generic_top_level_names_are_imported() -> None:
    """Inside the package, nothing imports `training`, `analysis`, … as top-level packages."""
    bad = []
    for module, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom) and not node.level
                else []
            )
            bad += [
                f"{module}:{node.lineno} imports {n}"
                for n in names
                if n.split(".")[0] in ("training", "activations", "probing", "analysis")
            ]
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("module", sorted(modules()))
def test_imports_point_down_the_layers(module: str) -> None:
    """A module imports only its own layer or the layers below it."""
    mine = LAYERS.index(layer_of(module))
    upward = [
        f"{module}:{line} ({layer_of(module)}) imports {name} ({layer_of(name)})"
        for line, name in imported(modules()[module], module)
        if LAYERS.index(layer_of(name)) > mine
    ]
    assert not upward, "\n".join(upward)


def test_the_layer_map_knows_every_package() -> None:
    """A new subpackage must be placed in a layer on purpose (edit LAYERS / layer_of)."""
    packages = {m.split(".")[1] for m in modules() if m.count(".") >= 1}
    known = {"training", "activations", "probing", "analysis", "steps", "corpora"}
    flat = {m for m in packages if (ROOT / "valuetrace" / f"{m}.py").is_file()}
    assert packages - flat <= known, packages - flat - known


def test_no_step_imports_another_step() -> None:
    """What several steps share lives in `steps/common.py` or a lower layer, never in a step."""
    found = {
        (module, name)
        for module, path in modules().items()
        if module.startswith("valuetrace.steps.")
        for _, name in imported(path, module)
        if name.startswith("valuetrace.steps.") and name != "valuetrace.steps.common"
    }
    assert not found, sorted(found)
