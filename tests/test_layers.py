"""The package's three layers (README, "Layout"): the model imports no hardware and no application
module, the hardware no application module – at the top of a module or inside a function."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MODEL = ["errors", "files", "data", "float_ops", "ir", "importers", "passes", "ttfs", "ttfs_torch", "golden",
         "geometry", "cycles", "codes", "conversion", "evaluate", "finetune", "qat", "tasks", "testing"]
HARDWARE = ["rtl_templates", "sim", "boards", "verilog", "simulate", "equivalence", "prove", "resources"]
APPLICATION = ["cli", "commands", "bench", "sweep", "html_report", "folding"]
# where each top-level name of hdlgen lives in the repo
FOLDERS = {"rtl_templates": ROOT / "rtl_templates", "sim": ROOT / "sim", "boards": ROOT / "boards"}


def _files(name: str) -> list:
    path = FOLDERS.get(name, ROOT / "hdlgen" / name)
    return sorted(path.rglob("*.py")) if path.is_dir() else [path.with_suffix(".py")]


def _package(path: Path) -> list:
    """``hdlgen.…`` package parts of a file (for resolving its relative imports)."""
    for name, folder in FOLDERS.items():
        if folder in path.parents:
            return ["hdlgen", name, *path.relative_to(folder).parent.parts]
    return ["hdlgen", *path.relative_to(ROOT / "hdlgen").parent.parts]


def imported(path: Path) -> set:
    """The hdlgen top-level names ``path`` imports anywhere in it."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = _package(path)[:len(_package(path)) - node.level + 1] if node.level else []
            module = [*base, *(node.module.split(".") if node.module else [])]
            if module[:1] != ["hdlgen"]:
                continue
            if len(module) >= 2:
                names.add(module[1])
            else:   # from hdlgen import x / from . import x (at the top level)
                names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name.split(".")[1] for alias in node.names
                         if alias.name.startswith("hdlgen.") and alias.name.count(".") >= 1)
    return names


@pytest.mark.parametrize("layer, below", [(MODEL, HARDWARE + APPLICATION), (HARDWARE, APPLICATION)],
                         ids=["model", "hardware"])
def test_no_layer_imports_one_below_it(layer, below):
    wrong = {f"{path.relative_to(ROOT)} imports {name}" for module in layer for path in _files(module)
             for name in imported(path) & set(below)}
    assert not wrong, sorted(wrong)


def test_every_module_is_in_a_layer():
    listed = set(MODEL + HARDWARE + APPLICATION)
    found = {path.stem if path.is_file() else path.name for path in (ROOT / "hdlgen").iterdir()
             if (path.suffix == ".py" and path.stem != "__init__") or (path.is_dir() and (path / "__init__.py").exists()
                                                                         and not path.is_symlink())}
    assert found - listed == set() and (listed - found) - set(FOLDERS) == set()
