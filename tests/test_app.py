"""The real entry points, as launched from a shell."""

import subprocess
import sys
import textwrap
from pathlib import Path

BIN = Path(sys.executable).parent

FIRST_PAINT = textwrap.dedent("""
    import sys
    from PySide6.QtCore import QEvent, QObject, QTimer
    from PySide6.QtWidgets import QApplication
    app = QApplication(sys.argv[:1])
    seen = []
    banner = []
    class FirstPaint(QObject):
        def eventFilter(self, obj, event):
            painted = event.type() == QEvent.Paint and obj.isWidgetType()
            if not seen and painted and type(obj.window()).__name__ == "MainWindow":
                w = obj.window()
                seen.append((w.windowTitle(), w.power_panel.source.count(), not app.windowIcon().isNull(),
                             w.db_label.text()))
                QTimer.singleShot(200, lambda: (banner.append(w.banner.text()), app.quit()))
            return False
    probe = FirstPaint()
    app.installEventFilter(probe)
    from tpw_desktop.ui.app import main
    code = main(sys.argv[1:])
    print(code, seen, banner)
""")


def test_the_desktop_app_opens_its_window(tmp_path):
    env = {"QT_QPA_PLATFORM": "offscreen", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            FIRST_PAINT,
            "--db",
            str(tmp_path / "s.db"),
            "--settings",
            str(tmp_path / "s.ini"),
            "--demo",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    code, seen = done.stdout.strip().split(" ", 1)
    assert code == "0"
    assert "tpw-desktop: tokens per joule" in seen and "True" in seen
    assert (tmp_path / "s.db").exists()  # the session database was opened (and recovered) at start


def test_the_gui_entry_point_answers_without_a_display():
    done = subprocess.run([str(BIN / "tpw-desktop"), "--version"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.startswith("tpw-desktop ")


def test_a_database_that_is_not_ours_is_left_alone_and_said_in_the_window(tmp_path):
    """Someone else's SQLite file at the database path: the window opens, records nothing, and says why."""
    import hashlib
    import sqlite3

    other = tmp_path / "notes.db"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE notes (text TEXT)")
    conn.commit()
    conn.close()
    before = hashlib.sha256(other.read_bytes()).hexdigest()
    env = {"QT_QPA_PLATFORM": "offscreen", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", FIRST_PAINT, "--db", str(other), "--settings", str(tmp_path / "s.ini"), "--demo"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert "notes.db is not a tpw-desktop database" in done.stdout  # the banner, read at first paint
    assert "sessions: not saved" in done.stdout
    assert "Traceback" not in done.stderr
    assert hashlib.sha256(other.read_bytes()).hexdigest() == before


def test_python_dash_m_is_the_cli():
    done = subprocess.run(
        [sys.executable, "-m", "tpw_desktop", "--version"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and "tpw" in done.stdout
