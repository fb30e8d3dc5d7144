"""``tpw-desktop``: build the window's parts and run the Qt event loop."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

# pyqtgraph picks PyQt6 over PySide6 when both are installed: say which before it loads.
os.environ.setdefault("PYQTGRAPH_QT_LIB", "PySide6")

from .. import __version__  # noqa: E402
from ..errors import TpwError  # noqa: E402
from ..paths import bundled_model_path, resources_dir  # noqa: E402
from ..power import DEFAULT_RATE_HZ, DEFAULT_TDP_W, PowerEnvironment, Sampler, availability, open_sources  # noqa: E402

DEMO_TRACE = "traces/demo-gpu.csv"


def power_choices(env: PowerEnvironment) -> list[tuple[str, str]]:
    """What the Power menu offers: auto, each available kind, and the demo trace."""
    choices = [("auto", "auto (best available)")]
    for item in availability(env):
        if item.available:
            for source in item.sources:
                choices.append((source["name"], f"{source['name']} — {source['method']}"))
            if len(item.sources) > 1:
                choices.append((item.kind, f"{item.kind}: all — {item.sources[0]['method']}"))
    choices.append((f"replay:{resources_dir() / DEMO_TRACE}", "demo trace — replayed"))
    return choices


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="tpw-desktop", description="Live tokens per joule of a local llama.cpp model.")
    parser.add_argument("model", nargs="?", type=Path, help="a .gguf model (default: the last one used, else the bundled SmolLM2)")
    parser.add_argument("--db", type=Path, default=os.environ.get("TPW_DB"), help="session database (env TPW_DB)")
    parser.add_argument("--no-save", action="store_true", help="don't record sessions")
    parser.add_argument("--power", help="power sources, as for `tpw bench --power` (default: the last choice, else auto)")
    parser.add_argument("--tdp-w", type=float, default=DEFAULT_TDP_W, help="CPU TDP for the estimate source")
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
    from PySide6.QtWidgets import QApplication

    from ..store import SessionWriter, Store
    from .main_window import MainWindow
    from .worker import EngineHost

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("tpw-desktop")
    app.setApplicationVersion(__version__)
    app.setDesktopFileName("tpw-desktop")
    from PySide6.QtGui import QIcon

    app.setWindowIcon(QIcon(str(resources_dir() / "icon.svg")))
    settings = QSettings(str(args.settings), QSettings.IniFormat) if args.settings else QSettings("tpw-desktop", "tpw-desktop")
    if args.theme:
        settings.setValue("theme", args.theme)

    env = PowerEnvironment(tdp_w=args.tdp_w)
    demo_spec = f"replay:{resources_dir() / DEMO_TRACE}"
    if args.demo:
        settings.setValue("power/spec", demo_spec)
    elif args.power:
        settings.setValue("power/spec", args.power)

    writer, db_path = None, None
    try:
        if not args.no_save:
            with Store(args.db) as store:
                store.recover_interrupted()
                db_path = store.path
            writer = SessionWriter(db_path)
    except TpwError as exc:
        print(f"tpw-desktop: {exc}", file=sys.stderr)
        return 2

    choices = power_choices(env)
    spec = settings.value("power/spec", "auto")
    if spec not in [c[0] for c in choices]:
        choices.append((spec, spec))

    def open_sampler(spec: str) -> Sampler:
        return Sampler(open_sources(spec, env), rate_hz=DEFAULT_RATE_HZ)

    host = EngineHost()
    window = MainWindow(host=host, open_sampler=open_sampler, power_choices=choices, settings=settings,
                        writer=writer, db_path=db_path, bundled_model=bundled_model_path())
    window.resize(1440, 900)
    window.show()
    if args.presentation:
        window.set_presentation(True)
    window.load_model(args.model or window.initial_model())
    try:
        return app.exec()
    finally:
        if writer is not None:
            writer.close()


if __name__ == "__main__":
    sys.exit(main())
