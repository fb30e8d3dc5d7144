"""The layers and the code's shape, enforced by tools (import-linter, ruff), not by convention."""

import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path

import tomllib

ROOT = Path(__file__).parents[1]
PACKAGE = ROOT / "tpw_desktop"
BIN = Path(sys.executable).parent
QT_MODULES = ("PySide6", "PyQt5", "PyQt6", "pyqtgraph", "shiboken6")
LAYERS = "Layers: front ends > worker > read side > live view > run > its parts > peers > records > numbers"
MAX_MODULE_LINES = 450
# The modules every package shares, and nothing else, sit at the package root.
ROOT_MODULES = {"__init__.py", "__main__.py", "errors.py", "paths.py", "serialize.py", "files.py"}


def lint(cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "lint-imports"), "--no-cache"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": str(cwd), "PATH": "/usr/bin:/bin"},
    )


def test_every_contract_is_kept():
    done = lint(ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Contracts: 4 kept, 0 broken." in done.stdout


def copy_of_the_project(tmp_path: Path) -> Path:
    shutil.copytree(PACKAGE, tmp_path / "tpw_desktop", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_qt_in_the_core_breaks_the_contract(tmp_path):
    project = copy_of_the_project(tmp_path)
    (project / "tpw_desktop" / "metrics" / "sneaky.py").write_text("from PySide6.QtCore import QTimer\n")
    done = lint(project)
    assert done.returncode == 1
    assert "Only the window imports Qt BROKEN" in done.stdout
    assert "tpw_desktop.metrics is not allowed to import PySide6" in done.stdout
    assert "tpw_desktop.metrics.sneaky -> PySide6 (l.1)" in done.stdout


def test_a_lower_layer_importing_a_higher_one_breaks_the_contract(tmp_path):
    project = copy_of_the_project(tmp_path)
    (project / "tpw_desktop" / "power" / "sneaky.py").write_text("from ..run.session import RunOptions\n")
    done = lint(project)
    assert done.returncode == 1
    assert LAYERS.split(" > ")[0] in done.stdout and "BROKEN" in done.stdout
    assert "tpw_desktop.power.sneaky -> tpw_desktop.run.session" in done.stdout


def test_a_cycle_hidden_behind_type_checking_breaks_the_contract(tmp_path):
    project = copy_of_the_project(tmp_path)
    (project / "tpw_desktop" / "run" / "sneaky.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .session import MeasuredRun\n"
    )
    (project / "tpw_desktop" / "run" / "session.py").write_text(
        (PACKAGE / "run" / "session.py").read_text() + "\nfrom . import sneaky  # noqa\n"
    )
    done = lint(project)
    assert done.returncode == 1
    assert "No import cycles between sibling modules or packages BROKEN" in done.stdout


def test_the_headless_cli_and_the_measuring_process_run_without_loading_qt():
    code = (
        "import sys, tpw_desktop.cli, tpw_desktop.run.session, tpw_desktop.store, tpw_desktop.worker.process; "
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {QT_MODULES!r}))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_ruff_finds_nothing_to_check_or_format():
    for args in (["check", "--no-cache", "."], ["format", "--check", "--no-cache", "."]):
        done = subprocess.run([str(BIN / "ruff"), *args], cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr


def test_modules_stay_small_and_the_root_holds_only_what_every_package_shares():
    long = {
        str(p.relative_to(ROOT)): n
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert long == {}
    assert {p.name for p in PACKAGE.glob("*.py")} <= ROOT_MODULES


def test_every_package_ships_in_the_wheel():
    """A package missing from pyproject's list imports from a checkout and fails once installed."""
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.relative_to(ROOT).parent.parts) for p in PACKAGE.rglob("__init__.py")}
    assert found | {"tpw_desktop.resources"} == listed


def test_no_module_reaches_a_private_attribute_of_llama_cpp_python_but_the_engine_s_one_function():
    """llama-cpp-python's private attributes change between releases: one place reaches them, and fails at load."""
    reaching = set()
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and re.fullmatch(r"_(ctx|model|batch)", node.attr):
                reaching.add(str(path.relative_to(ROOT)))
    assert reaching <= {"tpw_desktop/engine/llama_handles.py"}
