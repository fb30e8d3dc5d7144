"""What every ``tpw`` command shares: errors as one line, --db, output options, signals, progress.

Output options follow sqlite-utils' ``output_options``: one decorator gives a
listing command ``--json``, ``--csv`` and ``--fmt`` (any tabulate format),
and one function prints rows accordingly.
"""

from __future__ import annotations

import datetime as dt
import signal
import sys
import threading
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from .. import serialize
from ..errors import TpwError
from ..peers.text import plain
from ..run.events import Caution, RunEvent, SaveProblem, Status
from ..serialize import SafeCsvWriter

EXIT_USAGE = 2
EXIT_PARTIAL = 1  # measured, but the session could not be saved where asked
EXIT_CANCELLED = 130


def err(message: str) -> None:
    """One line on stderr: a peer's text inside ``message`` can't move the cursor, color or forge a line."""
    click.echo(f"tpw: {plain(message, 2000)}", err=True)


def fmt(value, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


class CliGroup(click.Group):
    """Turns a TpwError anywhere below into one line and exit status 2."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except TpwError as exc:
            err(str(exc))
            ctx.exit(EXIT_USAGE)


def _remember_db(ctx: click.Context, _param, value):
    if value is not None:
        ctx.ensure_object(dict)["db"] = value
    return value


def db_option(fn):
    """``--db`` on the group and on each command that uses it: ``tpw bench --db X`` works too."""
    return click.option(
        "--db",
        type=click.Path(dir_okay=False, path_type=Path),
        envvar="TPW_DB",
        expose_value=False,
        callback=_remember_db,
        help="Session database (default: the user data folder; env TPW_DB).",
    )(fn)


def db_path(ctx_obj: dict) -> Path | None:
    return ctx_obj.get("db")


def output_options(fn):
    """``--json`` / ``--csv`` / ``--fmt`` for a command that prints rows."""
    for option in reversed(
        [
            click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON on stdout."),
            click.option("--csv", "as_csv", is_flag=True, help="CSV on stdout."),
            click.option(
                "--fmt",
                "table_format",
                default="simple",
                show_default=True,
                help="Table format (any of tabulate's: simple, github, grid, ...).",
            ),
        ]
    ):
        fn = option(fn)
    return fn


def print_rows(
    rows: list[dict[str, Any]],
    columns: Sequence[tuple[str, str]],
    *,
    as_json: bool,
    as_csv: bool,
    table_format: str,
    empty: str,
    raw: list | None = None,
) -> None:
    """Rows as JSON (``raw`` when given: every field), CSV or a table of ``columns`` (key, header)."""
    if as_json:
        click.echo(serialize.dumps(raw if raw is not None else rows, indent=2))
        return
    if as_csv:
        writer = SafeCsvWriter(sys.stdout)
        writer.writerow([header for _, header in columns])
        writer.writerows([[row.get(key) for key, _ in columns] for row in rows])
        return
    if not rows:
        click.echo(empty)
        return
    from tabulate import tabulate

    click.echo(
        tabulate(
            [[_plain(row.get(key)) for key, _ in columns] for row in rows],
            [header for _, header in columns],
            tablefmt=table_format,
            disable_numparse=True,
        )
    )


def _plain(value) -> str:
    """A cell as a terminal table shows it: one line, no control characters (a model or node name is a peer's)."""
    return "" if value is None else plain(value, 500)


def parse_day(_ctx, param, value: str | None) -> str | None:
    """A date or timestamp in ISO form (UTC), refused early with an example otherwise."""
    if value is None:
        return None
    try:
        return dt.datetime.fromisoformat(value).isoformat()
    except ValueError:
        raise click.BadParameter(
            f"expected a date like 2026-11-27 or 2026-11-27T14:30, got {value!r}", param=param
        ) from None


def parse_counts(value: str, option: str) -> list[int]:
    try:
        counts = [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise click.BadParameter(
            f"expected token counts like 512 or 128,256, got {value!r}", param_hint=option
        ) from None
    if any(c < 0 for c in counts):
        raise click.BadParameter("token counts can't be negative", param_hint=option)
    return [c for c in counts if c > 0]


class StopSignals:
    """Ctrl-C or SIGTERM stops the run cleanly (saved as cancelled, what finished is printed);
    a second one aborts at once (saved as interrupted, what finished is still printed). Once
    the runs are over (``done()``), further signals are ignored while the results print."""

    def __init__(self):
        self.stop = threading.Event()
        self._abortable = True

    def handle(self, signum, _frame) -> None:
        name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
        if self.stop.is_set():
            if self._abortable:
                raise KeyboardInterrupt
            return
        self.stop.set()
        err(f"{name}: stopping after the current token (Ctrl-C again to abort)")

    def done(self) -> None:
        self._abortable = False


@contextmanager
def stop_on_signals():
    signals = StopSignals()
    if threading.current_thread() is not threading.main_thread():
        yield signals
        return
    previous = {sig: signal.signal(sig, signals.handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield signals
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


class Progress:
    """A run's listener: one status line on stderr, rewritten in place on a terminal."""

    def __init__(self, label: str, enabled: bool):
        self.label = label
        self.enabled = enabled
        self.tty = sys.stderr.isatty()

    def __call__(self, event: RunEvent) -> None:
        if isinstance(event, Status):
            self.status(event.message)
        elif isinstance(event, (SaveProblem, Caution)):
            self.done()
            err(f"warning: {event.message}")

    def status(self, message: str) -> None:
        if not self.enabled:
            return
        line = f"tpw: {self.label}: {message}"
        if self.tty:
            click.echo(f"\r\x1b[2K{line}", err=True, nl=False)
        else:
            click.echo(line, err=True)

    def done(self) -> None:
        if self.enabled and self.tty:
            click.echo("\r\x1b[2K", err=True, nl=False)
