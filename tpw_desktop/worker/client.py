"""The window's side of the measuring process: start it, send commands, collect batches, notice death.

No Qt here: the window's run controller calls ``receive()`` when ``fileno()``
is readable, and tests drive a client directly.
"""

from __future__ import annotations

import os
import subprocess
import sys
from multiprocessing.connection import Connection
from pathlib import Path

from .protocol import Batch, Command, Shutdown, StopRun


class ProcessGone(Exception):
    """The measuring process died (killed, crashed, out of memory)."""

    def __init__(self, exitcode: int | None):
        self.exitcode = exitcode
        how = "was killed" if exitcode is not None and exitcode < 0 else f"exited with status {exitcode}"
        super().__init__(f"the measuring process {how}")


class MeasureClient:
    """One measuring process; ``record`` sends its runs to the database at ``db_path``.

    It is started as ``python -m tpw_desktop.worker`` with two inherited pipes
    (commands in, batches out), so it imports nothing of the window's: no Qt,
    no re-run of the program that started it.
    """

    def __init__(self, db_path: Path | None, record: bool = True):
        commands_read, commands_write = os.pipe()
        events_read, events_write = os.pipe()
        args = [sys.executable, "-m", "tpw_desktop.worker", str(commands_read), str(events_write)]
        args += ["--db", str(db_path)] if db_path is not None else []
        args += [] if record else ["--no-record"]
        try:
            self.process = subprocess.Popen(args, pass_fds=(commands_read, events_write), stdin=subprocess.DEVNULL)
        finally:
            os.close(commands_read)  # the child's ends: ours would keep the pipes open after it dies
            os.close(events_write)
        self._commands = Connection(commands_write, readable=False)
        self._events = Connection(events_read, writable=False)
        self.pid = self.process.pid

    def send(self, command: Command) -> None:
        try:
            self._commands.send(command)
        except (OSError, EOFError, BrokenPipeError):
            raise ProcessGone(self.process.poll()) from None

    def stop_run(self) -> None:
        self.send(StopRun())

    def fileno(self) -> int:
        """The pipe batches arrive on: readable when one waits, and when the process has gone."""
        return self._events.fileno()

    def receive(self, limit: int = 100) -> list[Batch]:
        """Batches waiting now (never blocks); ProcessGone once the process is dead and drained."""
        batches = []
        try:
            while len(batches) < limit and self._events.poll():
                batches.append(self._events.recv())
        except (EOFError, OSError):
            if batches:
                return batches
            raise ProcessGone(self._wait(5)) from None
        return batches

    def _wait(self, timeout_s: float) -> int | None:
        try:
            return self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            return None

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def close(self, timeout_s: float = 10.0) -> None:
        """Stop any run, let the process close its model, sampler and writer, and end it."""
        if self.alive:
            try:
                self._commands.send(Shutdown())
            except (OSError, BrokenPipeError):
                pass
            self._wait(timeout_s)
        if self.alive:
            self.process.terminate()
            self._wait(5)
        self._commands.close()
        self._events.close()

    def kill(self) -> None:
        """As if the process crashed (tests, and the last resort)."""
        self.process.kill()
        self._wait(5)
