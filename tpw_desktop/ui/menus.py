"""The window's menus and their shortcuts (which keep working with the menu bar hidden)."""

from __future__ import annotations

from PySide6.QtGui import QAction, QKeySequence

from . import help as help_texts
from .theme import THEMES


def build_menus(window) -> dict[str, QAction]:
    """File, Run, View, Chart and Help; returns the actions the window changes later, by name."""
    named: dict[str, QAction] = {}

    def action(menu, text, slot, shortcut=None, checkable=False, name=None):
        a = QAction(text, window)
        if shortcut:
            a.setShortcuts(shortcut if isinstance(shortcut, list) else [shortcut])
        a.setCheckable(checkable)
        a.triggered.connect(slot)
        menu.addAction(a)
        window.addAction(a)  # shortcuts keep working with the menu bar hidden (presentation mode)
        if name:
            named[name] = a
        return a

    bar = window.menuBar()
    charts = window.dashboard.charts
    file_menu = bar.addMenu("&File")
    action(file_menu, "&Open model…", window.choose_model, QKeySequence.Open)
    action(file_menu, "Use the &bundled model", lambda: window.load_model(window.bundled_model))
    action(file_menu, "&Save results as…", window.save_results_as, QKeySequence.Save)
    action(file_menu, "&Quantize a model…", window.workflows.open_quantize, QKeySequence("Ctrl+Shift+Q"))
    file_menu.addSeparator()
    action(file_menu, "&Quit", window.close, QKeySequence.Quit)
    run_menu = bar.addMenu("&Run")
    action(run_menu, "&Start", window.start, [QKeySequence("Ctrl+Return"), QKeySequence("Ctrl+Enter")])
    action(run_menu, "S&top", window.controller.stop, QKeySequence("Esc"))
    action(run_menu, "Measure &idle now", window.measure_idle, QKeySequence("Ctrl+I"))
    action(run_menu, "S&weep…", window.workflows.open_sweep, QKeySequence("Ctrl+Shift+W"))
    action(run_menu, "Measure a se&rver…", window.workflows.open_endpoint, QKeySequence("Ctrl+Shift+E"))
    action(
        run_menu,
        "Serve &Prometheus metrics (127.0.0.1)",
        lambda: window.workflows.serve_metrics(named["metrics"].isChecked()),
        checkable=True,
        name="metrics",
    )
    action(run_menu, "Prometheus metrics p&ort…", window.workflows.choose_metrics_port)
    action(run_menu, "&Restart the measuring process", window.restart, name="restart")
    view = bar.addMenu("&View")
    for number, (name, widget) in enumerate(
        (
            ("&Live", window.dashboard),
            ("&History", window.history),
            ("&Compare", window.compare_view),
            ("&Fleet", window.fleet_view),
        ),
        start=1,
    ):
        action(view, name, lambda _=False, w=widget: window.views.setCurrentWidget(w), QKeySequence(f"Ctrl+{number}"))
    view.addSeparator()
    action(
        view,
        "&Presentation mode",
        lambda: window.set_presentation(named["presentation"].isChecked()),
        QKeySequence("F11"),
        checkable=True,
        name="presentation",
    )
    action(view, "&Follow live (last 2 min)", charts.follow_live, QKeySequence("Ctrl+L"))
    action(view, "Show &whole history", charts.show_all, QKeySequence("Ctrl+H"))
    view.addSeparator()
    for theme in THEMES:
        action(view, f"{theme.title()} theme", lambda _=False, n=theme: window.apply_theme(n))
    chart = bar.addMenu("&Chart")
    action(chart, "&Export charts…", window.export_charts, QKeySequence("Ctrl+E"))
    help_menu = bar.addMenu("&Help")
    action(help_menu, "&Keyboard shortcuts", lambda: help_texts.show_shortcuts(window))
    action(help_menu, "&Reading the numbers", lambda: help_texts.show_reading(window))
    action(help_menu, "&About tpw-desktop", lambda: help_texts.show_about(window, window.controller.build))
    return named
