"""Dark and light themes for widgets and charts (dark by default: demos happen on projectors)."""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication


@dataclass(frozen=True)
class Theme:
    name: str
    colors: dict[str, str]
    font_pt: int = 10


_COMMON = {
    "rate_instant": "#4f9dde80",
    "rate_rolling": "#4f9dde",
    "eff_rolling": "#7ccf7c80",
    "eff_run": "#2ca02c",
    "eff_above": "#e8b33c",
    "idle": "#999999",
    "source0": "#e4572e",
    "source1": "#a463f2",
    "source2": "#17bebb",
    "source3": "#f2a541",
}

DARK = Theme(
    "dark",
    {
        **_COMMON,
        "background": "#141414",
        "panel": "#1e1e1e",
        "foreground": "#e6e6e6",
        "muted": "#9a9a9a",
        "axis": "#8a8a8a",
        "phase_pp": "#ff8c0030",
        "phase_tg": "#4f9dde22",
        "phase_warmup": "#ffffff10",
        "phase_settle": "#b0b0ff14",
        "phase_idle": "#9a9a9a18",
        "phase_cooldown": "#b0b0ff14",
        "error": "#5c1f1f",
        "warning": "#5a4a12",
    },
)

LIGHT = Theme(
    "light",
    {
        **_COMMON,
        "background": "#ffffff",
        "panel": "#f3f3f3",
        "foreground": "#202020",
        "muted": "#666666",
        "axis": "#555555",
        "phase_pp": "#ff8c0028",
        "phase_tg": "#1f77b41c",
        "phase_warmup": "#00000010",
        "phase_settle": "#3030c010",
        "phase_idle": "#60606014",
        "phase_cooldown": "#3030c010",
        "error": "#f6d5d5",
        "warning": "#fff1c2",
    },
)

THEMES = {t.name: t for t in (DARK, LIGHT)}


def apply_palette(app: QApplication, theme: Theme) -> None:
    app.setStyle("Fusion")
    palette = QPalette()
    bg, panel, fg = (
        QColor(theme.colors["background"]),
        QColor(theme.colors["panel"]),
        QColor(theme.colors["foreground"]),
    )
    for role, color in (
        (QPalette.Window, panel),
        (QPalette.Base, bg),
        (QPalette.AlternateBase, panel),
        (QPalette.Button, panel),
        (QPalette.WindowText, fg),
        (QPalette.Text, fg),
        (QPalette.ButtonText, fg),
        (QPalette.ToolTipBase, panel),
        (QPalette.ToolTipText, fg),
        (QPalette.Highlight, QColor("#2a6fb0")),
        (QPalette.HighlightedText, QColor("#ffffff")),
        (QPalette.PlaceholderText, QColor(theme.colors["muted"])),
    ):
        palette.setColor(role, color)
    palette.setColor(QPalette.Disabled, QPalette.Text, QColor(theme.colors["muted"]))
    palette.setColor(QPalette.Disabled, QPalette.WindowText, QColor(theme.colors["muted"]))
    palette.setColor(QPalette.Disabled, QPalette.ButtonText, QColor(theme.colors["muted"]))
    app.setPalette(palette)
