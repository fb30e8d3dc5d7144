"""``tpw-desktop``: start the measuring process, build the window's parts, run the Qt event loop."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

# pyqtgraph picks PyQt6 over PySide6 when both are installed: say which before it loads.
os.environ.setdefault("PYQTGRAPH_QT_LIB", "PySide6")

from .. import __version__
from ..errors import TpwError
from ..paths import bundled_model_path, resources_dir
from ..power import DEFAULT_TDP_W, PowerEnvironment, availability

DEMO_TRACE = "traces/demo-gpu.csv"
DEFAULT_SIZE = (1440, 900)
# On a machine whose cores the model keeps busy, a frame painted at normal priority takes
# CPU from the token loop (measured: runs from the window at ~0.8-0.9x of tpw bench).
VIEWER_NICE = 10


def power_choices(env: PowerEnvironment) -> list[tuple[str, str]]:
    """What the Power menu offers: auto, each available source, the two estimates, and the demo trace."""
    choices = [("auto", "auto (best available)")]
    for item in availability(env):
        if item.available and item.kind != "estimate":
            for source in item.sources:
                choices.append((source.name, f"{source.name} — {source.method}"))
            if len(item.sources) > 1:
                choices.append((item.kind, f"{item.kind}: all — {item.sources[0].method}"))
    choices.append(("estimate-process", "estimate: the measuring process's CPU — estimated"))
    choices.append(("estimate", "estimate: the whole machine's CPU — estimated"))
    choices.append((f"replay:{resources_dir() / DEMO_TRACE}", "demo trace — replayed"))
    return choices


def lower_priority(nice: int = VIEWER_NICE) -> None:
    """The window yields the CPU to the model it measures: its painting thread runs at a lower priority.

    On Linux a nice value is per thread; the measuring process keeps its own (see RunController).
    """
    try:
        os.nice(nice)
    except OSError:  # not permitted here: the window just competes as any program would
        pass


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="tpw-desktop", description="Live tokens per joule of a local llama.cpp model."
    )
    parser.add_argument(
        "model", nargs="?", type=Path, help="a .gguf model (default: the last one used, else the bundled SmolLM2)"
    )
    parser.add_argument("--db", type=Path, default=os.environ.get("TPW_DB"), help="session database (env TPW_DB)")
    parser.add_argument("--no-save", action="store_true", help="don't record sessions")
    parser.add_argument(
        "--power", help="power sources, as for `tpw bench --power` (default: the last choice, else auto)"
    )
    parser.add_argument(
        "--tdp-w", type=float, default=None, help=f"CPU TDP for the estimate source (default {DEFAULT_TDP_W:g})"
    )
    parser.add_argument("--demo", action="store_true", help="replay the shipped demo power trace (labelled 'replayed')")
    parser.add_argument("--presentation", action="store_true", help="start in presentation mode (F11 toggles)")
    parser.add_argument("--theme", choices=["dark", "light"], help="colour theme (default: dark)")
    parser.add_argument("--settings", type=Path, help=argparse.SUPPRESS)  # an .ini file instead of the user's settings
    parser.add_argument("--version", action="version", version=f"tpw-desktop {__version__}")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    # PySide6 before pyqtgraph (see above), and both only now: `--help` needs neither.
    from PySide6.QtCore import QSettings
    from PySide6.QtGui import QIcon
    from PySide6.QtWidgets import QApplication

    from ..paths import default_db_path
    from ..store import Store
    from .controller import RunController
    from .main_window import MainWindow

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("tpw-desktop")
    app.setApplicationVersion(__version__)
    app.setDesktopFileName("tpw-desktop")
    app.setWindowIcon(QIcon(str(resources_dir() / "icon.svg")))
    settings = (
        QSettings(str(args.settings), QSettings.IniFormat) if args.settings else QSettings("tpw-desktop", "tpw-desktop")
    )
    if args.theme:
        settings.setValue("theme", args.theme)
    if args.demo:
        settings.setValue("power/spec", f"replay:{resources_dir() / DEMO_TRACE}")
    elif args.power:
        settings.setValue("power/spec", args.power)

    db_path, db_problem = None, None
    if not args.no_save:
        try:  # a database that isn't ours, is newer or can't be written: the window says so, records nothing
            with Store(args.db) as store:
                db_path = store.path
        except TpwError as exc:
            db_problem = f"Sessions won't be saved: {exc}"
            print(f"tpw-desktop: {db_problem}", file=sys.stderr)
    choices = power_choices(PowerEnvironment())
    spec = str(settings.value("power/spec", "auto"))
    if spec not in [c[0] for c in choices]:  # given with --power, or chosen on another machine
        choices.append((spec, spec))
    record = not args.no_save and db_problem is None
    controller = RunController(db_path or args.db or default_db_path(), record=record)
    lower_priority()
    window = MainWindow(
        controller=controller,
        power_choices=choices,
        settings=settings,
        bundled_model=bundled_model_path(),
        tdp_w=args.tdp_w,
    )
    if not window.has_saved_geometry():
        window.resize(*DEFAULT_SIZE)
    window.show()
    if db_problem:
        window.show_error(db_problem, kind="database")
    if args.presentation:
        window.set_presentation(True)
    window.load_model(args.model or window.initial_model())
    try:
        return app.exec()
    finally:
        controller.close()


if __name__ == "__main__":
    sys.exit(main())
