"""Help menu texts: keyboard shortcuts, how to read the numbers, and About with every version."""

from __future__ import annotations

import html

from PySide6.QtWidgets import QMessageBox, QWidget

from .. import __version__

SHORTCUTS = (
    ("Ctrl+Enter", "start a run"),
    ("Esc", "stop after the current token (saved as cancelled)"),
    ("F11", "presentation mode"),
    ("Ctrl+I", "measure idle power now"),
    ("Ctrl+O", "open a model"),
    ("Ctrl+1 / 2 / 3 / 4", "the Live, History, Compare and Fleet views"),
    ("Ctrl+Shift+W", "sweep models, a setting or GPU power limits"),
    ("Ctrl+Shift+Q", "quantize a model"),
    ("Ctrl+Shift+E", "measure an OpenAI-compatible server"),
    ("Ctrl+L / Ctrl+H", "follow live / show the whole history"),
    ("Ctrl+E", "export the charts"),
    ("Ctrl+S", "save the last run's results as JSON"),
    ("Ctrl+Q", "quit"),
)

READING = """
<p><b>speed</b> is tokens per second; after a run, generation's (tg), as llama-bench reports it.
<b>efficiency</b> is tokens per joule, the same number as tokens/s per watt; <b>energy</b> is its inverse,
in J/token and Wh per 1,000 tokens; <b>cost</b> is at your electricity price (Power panel).</p>
<p>Every power and energy figure says how it was obtained: <i>counter</i> (an energy counter, differenced),
<i>sampled</i> (power readings, integrated), <i>estimated</i> (CPU busy time × TDP: a model, not a
measurement) or <i>replayed</i> (a recorded trace). <i>low confidence</i> means the figure's error bound
is over 10% of it or it lasted under a second; a missing figure (–) says why in its tooltip.</p>
<p>Energy figures of a finished run are pooled over its repetitions (all tokens over all joules); the
idle baseline is measured after the machine settles, and "above idle" figures appear only when the run
draws clearly more than idle. Every formula is in docs/methodology.md.</p>
"""


def show_shortcuts(parent: QWidget) -> None:
    rows = "".join(f"<tr><td><b>{k}</b></td><td>{html.escape(v)}</td></tr>" for k, v in SHORTCUTS)
    QMessageBox.information(parent, "Keyboard shortcuts", f"<table cellpadding=4>{rows}</table>")


def show_reading(parent: QWidget) -> None:
    QMessageBox.information(parent, "Reading the numbers", READING)


def versions(build=None) -> list[tuple[str, str]]:
    """tpw, llama.cpp's build, Qt and the NVIDIA driver, for a bug report or a forum post."""
    import pyqtgraph
    from PySide6 import __version__ as pyside
    from PySide6.QtCore import qVersion

    rows = [("tpw-desktop", __version__)]
    if build is not None:
        rows += [
            ("llama-cpp-python", build.llama_cpp_python_version),
            ("llama.cpp build", build.system_info),
            ("GPU offload", "yes" if build.gpu_offload_supported else "no (CPU build)"),
        ]
    rows += [
        ("Qt", f"{qVersion()} (PySide6 {pyside})"),
        ("pyqtgraph", pyqtgraph.__version__),
        ("NVIDIA driver", _driver() or "none found"),
    ]
    return rows


def _driver() -> str | None:
    try:
        from ..power.nvml import NvmlLibrary

        library = NvmlLibrary()
        library.init()
    except Exception:  # noqa: BLE001 - no driver, no library: that is the answer
        return None
    try:
        driver = library.driver_version()
        return None if not driver else str(driver)
    finally:
        library.shutdown()


def show_about(parent: QWidget, build=None) -> None:
    rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>" for k, v in versions(build))
    QMessageBox.about(
        parent,
        "About tpw-desktop",
        "<p><b>tpw-desktop</b>: how many tokens does this machine produce per joule?</p>"
        f"<table cellpadding=3>{rows}</table>",
    )
