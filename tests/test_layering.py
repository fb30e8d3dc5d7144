"""The layers, enforced by import-linter (the contracts are in pyproject.toml), not by convention."""
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[1]
LINT = str(Path(sys.executable).with_name("lint-imports"))
QT_MODULES = ("PySide6", "PyQt5", "PyQt6", "pyqtgraph", "shiboken6")


def lint(cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([LINT, "--no-cache"], cwd=cwd, capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(cwd), "PATH": "/usr/bin:/bin"})


def test_every_contract_is_kept():
    done = lint(ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Contracts: 2 kept, 0 broken." in done.stdout


def copy_of_the_project(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "tpw_desktop", tmp_path / "tpw_desktop", ignore=shutil.ignore_patterns("__pycache__"))
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
    (project / "tpw_desktop" / "power" / "sneaky.py").write_text("from ..session import RunOptions\n")
    done = lint(project)
    assert done.returncode == 1
    assert "Layers: front ends over the measuring process over the run over its parts BROKEN" in done.stdout
    assert "tpw_desktop.power.sneaky -> tpw_desktop.session" in done.stdout


def test_the_headless_cli_and_the_measuring_process_run_without_loading_qt():
    code = ("import sys, tpw_desktop.cli, tpw_desktop.session, tpw_desktop.store, tpw_desktop.measure.child; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in %r))" % (QT_MODULES,))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
