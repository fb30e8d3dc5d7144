"""A run's life in the store, the same for a local model and a server: begun, idle kept, ended with its status.

Whatever ends a run, its session ends with the status that says why:
``completed``; ``cancelled`` by a Stop (Ctrl-C, SIGTERM, the window's
button); ``failed`` with the reason (a server's bad answer, a model that
fails); ``interrupted`` only by the user's second Ctrl-C. The measurement
stands when the database takes no write: the report says so.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Protocol

from ..errors import TpwError
from ..power import Sampler
from ..record.calls import CallRow, TokenEvent
from ..record.meta import RunMeta
from ..record.results import ResultRow
from ..record.stored import RunOutcome
from ..record.vocab import Status
from .events import RunEvent, SaveProblem
from .results import RunReport


class Recorder(Protocol):
    """Where a run is persisted (``store.SessionWriter``); absent with ``--no-save``.

    ``begin`` and ``finish`` raise a TpwError when the database takes no write;
    ``problem`` says why writes are failing meanwhile (the run goes on).
    """

    def begin(self, meta: RunMeta, samples: Sampler) -> int: ...

    def idle(self, session_id: int, outcome: RunOutcome) -> None: ...

    def token(
        self, session_id: int, test: str, repetition: int, call: int, event: TokenEvent, store_text: bool
    ) -> None: ...

    def rows(self, session_id: int, calls: list[CallRow], results: list[ResultRow]) -> None: ...

    def finish(self, session_id: int, status: Status, outcome: RunOutcome, error: str | None = None) -> None: ...

    def problem(self) -> str | None: ...


def failure_text(exc: BaseException) -> str:
    """A failure in a user's words: a TpwError says it already; anything else is named with its type."""
    return str(exc) if isinstance(exc, TpwError) else f"{type(exc).__name__}: {exc}"


@contextmanager
def recording(
    report: RunReport,
    recorder: Recorder | None,
    sampler: Sampler,
    stop: threading.Event,
    before_finish: Callable[[], None] = lambda: None,
) -> Iterator[None]:
    """Begin ``report``'s session; on the way out set its status and write its outcome (``before_finish``
    completes the report first: summaries, the sampler's stats)."""
    report.session_id = recorder.begin(report.meta, sampler) if recorder else None
    try:
        yield
        report.status = "cancelled" if stop.is_set() else "completed"
    except Exception as exc:
        report.status, report.error = "failed", failure_text(exc)
        raise
    except BaseException:  # a second Ctrl-C: the run was cut short, not broken
        report.status, report.error = "interrupted", "interrupted by the user"
        raise
    finally:
        before_finish()
        report.sampler = sampler.stats()
        if recorder is not None and report.session_id is not None:
            try:
                recorder.finish(report.session_id, report.status, report.outcome(), report.error)
            except TpwError as exc:  # the measurement stands; the caller shows it and saves it elsewhere
                report.save_error = str(exc)


class SaveWatch:
    """Tells the listener once when the database stops taking writes (and again if the reason changes)."""

    def __init__(self, recorder: Recorder | None, listener: Callable[[RunEvent], None]):
        self.recorder, self.listener = recorder, listener
        self._said: str | None = None

    def check(self) -> None:
        if self.recorder is None:
            return
        problem = self.recorder.problem()
        if problem and problem != self._said:
            self.listener(
                SaveProblem(
                    f"the session database is not taking writes ({problem}): the run goes on, "
                    "and its results will be shown and kept"
                )
            )
        self._said = problem
