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
    class FirstPaint(QObject):
        def eventFilter(self, obj, event):
            if not seen and event.type() == QEvent.Paint and obj.isWidgetType() and type(obj.window()).__name__ == "MainWindow":
                w = obj.window()
                seen.append((w.windowTitle(), w.power_panel.source.count(), not app.windowIcon().isNull()))
                QTimer.singleShot(0, app.quit)
            return False
    probe = FirstPaint()
    app.installEventFilter(probe)
    from tpw_desktop.ui.app import main
    code = main(sys.argv[1:])
    print(code, seen)
""")


def test_the_desktop_app_opens_its_window(tmp_path):
    env = {"QT_QPA_PLATFORM": "offscreen", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", FIRST_PAINT, "--db", str(tmp_path / "s.db"), "--settings",
                           str(tmp_path / "s.ini"), "--demo"], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    code, seen = done.stdout.strip().split(" ", 1)
    assert code == "0"
    assert "tpw-desktop: tokens per joule" in seen and "True" in seen
    assert (tmp_path / "s.db").exists()  # the session database was opened (and recovered) at start


def test_the_gui_entry_point_answers_without_a_display():
    done = subprocess.run([str(BIN / "tpw-desktop"), "--version"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.startswith("tpw-desktop ")


def test_a_bad_database_is_one_line(tmp_path):
    bad = tmp_path / "bad.db"
    bad.write_text("not sqlite " * 100)
    done = subprocess.run([str(BIN / "tpw-desktop"), "--db", str(bad)], capture_output=True, text=True, timeout=60,
                          env={"QT_QPA_PLATFORM": "offscreen", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert done.returncode == 2
    assert done.stderr.strip().startswith(f"tpw-desktop: {bad}: cannot open the session database")
    assert "Traceback" not in done.stderr


def test_python_dash_m_is_the_cli():
    done = subprocess.run([sys.executable, "-m", "tpw_desktop", "--version"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "tpw" in done.stdout
