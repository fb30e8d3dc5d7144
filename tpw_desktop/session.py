"""One measured run: engine + power sampler (+ store), from idle baseline to summary.

Data flows one way: the engine and the sampler produce timestamped events,
this module cuts windows and computes figures, a recorder persists them, and
a listener (the CLI's progress line, the GUI's signals) watches. The same
code serves ``tpw bench`` and the desktop window.
"""
from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from . import __version__
from .engine.llama_engine import Engine, TokenEvent
from .engine.workloads import TestSpec
from .metrics import IdleBaseline, PhaseFigures, WindowEnergy, concat, idle_power_w, latency, mean_sd, phase_figures
from .power import Sampler, source_summary
from .runner import Repetition, run_once, warm_up

PHASE_ORDER = ("pp", "tg", "total")


@dataclass(frozen=True)
class RunOptions:
    repetitions: int = 5
    warmup: bool = True
    idle_s: float = 3.0  # 0 skips the idle baseline
    price_per_kwh: float | None = None
    currency: str = "USD"
    temperature: float = 0.0
    store_text: bool = True

    def as_dict(self) -> dict:
        return asdict(self)


class RunListener:
    """What a run tells its watcher; every method may be left as a no-op."""

    def status(self, message: str) -> None: ...

    def idle_measured(self, baseline: IdleBaseline) -> None: ...

    def call_started(self, test: str, repetition: int, call: int, prompt_tokens: int, t_ns: int) -> None:
        """A call begins; ``repetition`` is -1 for the unrecorded warm-up."""

    def token(self, event: TokenEvent) -> None: ...

    def repetition_done(self, repetition: Repetition, results: list[PhaseResult]) -> None: ...


class Recorder(Protocol):
    """Where a run is persisted (``store.SessionWriter``); absent with ``--no-save``."""

    def begin(self, meta: dict[str, Any], sampler: Sampler) -> int: ...

    def token(self, session_id: int, test: str, repetition: int, call: int, event: TokenEvent, store_text: bool) -> None: ...

    def repetition(self, session_id: int, repetition: Repetition, results: list[PhaseResult], store_text: bool) -> None: ...

    def finish(self, session_id: int, status: str, summary: dict[str, Any], error: str | None = None) -> None: ...


@dataclass(frozen=True)
class PhaseResult:
    """One phase of one repetition, with its energy and efficiency.

    ``t_start_ns``/``t_end_ns`` bound the phase on the engine's clock (a
    multi-call workload's phase is several spans inside them).
    """

    test: str
    repetition: int
    phase: str
    figures: PhaseFigures
    t_start_ns: int
    t_end_ns: int

    def as_dict(self) -> dict:
        return {"test": self.test, "repetition": self.repetition, "phase": self.phase,
                "t_start_ns": self.t_start_ns, "t_end_ns": self.t_end_ns, **self.figures.as_dict()}


@dataclass(frozen=True)
class TestSummary:
    """A test's phase over its repetitions: mean and sample sd, as llama-bench reports."""

    test: str
    phase: str
    repetitions: int
    tokens: int
    tokens_per_s: tuple[float, float]
    tokens_per_j: tuple[float, float]
    tokens_per_j_above_idle: tuple[float, float] | None
    j_per_token: tuple[float, float]
    wh_per_1k_tokens: float
    cost_per_1m_tokens: float | None
    average_w: tuple[float, float]
    peak_w: float
    method: str
    confident: bool
    latency: dict | None = None

    def as_dict(self) -> dict:
        d = dict(self.__dict__)
        for key in ("tokens_per_s", "tokens_per_j", "tokens_per_j_above_idle", "j_per_token", "average_w"):
            value = d.pop(key)
            d[f"{key}_mean"], d[f"{key}_sd"] = value if value is not None else (None, None)
        return d


@dataclass
class RunReport:
    meta: dict[str, Any]
    idle: IdleBaseline | None
    results: list[PhaseResult] = field(default_factory=list)
    summaries: list[TestSummary] = field(default_factory=list)
    status: str = "running"
    error: str | None = None
    session_id: int | None = None
    sampler: dict | None = None

    def as_dict(self) -> dict:
        return {
            **self.meta,
            "session_id": self.session_id,
            "status": self.status,
            "error": self.error,
            "idle": None if self.idle is None else self.idle.__dict__,
            "sampler": self.sampler,
            "summary": [s.as_dict() for s in self.summaries],
            "results": [r.as_dict() for r in self.results],
        }


def machine_facts() -> dict[str, Any]:
    import os
    import platform

    import psutil

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "hostname": platform.node(),
        "cpu": cpu,
        "cpu_logical": os.cpu_count(),
        "cpu_physical": psutil.cpu_count(logical=False),
        "ram_gib": round(psutil.virtual_memory().total / (1 << 30), 1),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
    }


class MeasuredRun:
    """Runs tests on an engine while a sampler measures, on the engine's thread."""

    def __init__(
        self,
        engine: Engine,
        sampler: Sampler,
        options: RunOptions = RunOptions(),
        *,
        recorder: Recorder | None = None,
        listener: RunListener | None = None,
        stop: threading.Event | None = None,
    ):
        self.engine = engine
        self.sampler = sampler
        self.options = options
        self.recorder = recorder
        self.listener = listener or RunListener()
        self.stop = stop or threading.Event()

    def meta(self, tests: list[TestSpec], workload_text: dict | None = None) -> dict[str, Any]:
        engine = self.engine
        sources = [source_summary(s) for s in self.sampler.sources]
        return {
            "tool_version": __version__,
            "machine": machine_facts(),
            "model": engine.facts.as_dict(),
            "build": engine.build.as_dict(),
            "settings": {**engine.settings.__dict__, "load_ms": engine.load_ms},
            "warnings": list(engine.warnings),
            "options": self.options.as_dict(),
            "tests": [t.name for t in tests],
            "workload": workload_text,
            "power_sources": sources,
            "method": _weakest([s["method"] for s in sources]),
        }

    def measure_idle(self) -> IdleBaseline | None:
        seconds = self.options.idle_s
        if seconds <= 0:
            return None
        self.listener.status(f"measuring idle power for {seconds:g} s")
        t0 = self._now_with_samples()
        if self.stop.wait(seconds):  # True: stopped during the idle window
            return None
        t1 = time.monotonic_ns()
        energy = self._energy([(t0, t1)])
        baseline = IdleBaseline(idle_power_w(energy.joules, energy.seconds), energy.seconds, energy.method,
                                energy.confident)
        self.listener.idle_measured(baseline)
        return baseline

    def _now_with_samples(self) -> int:
        """Now, once the sampler has caught up with it: a window starting later has a sample at its left edge."""
        t = time.monotonic_ns()
        self.sampler.wait_until(t)
        return t

    def _energy(self, spans: list[tuple[int, int]]) -> WindowEnergy:
        self.sampler.wait_until(max(end for _, end in spans))
        return concat([self.sampler.window_energy(t0, t1) for t0, t1 in spans])

    def figures_for(self, rep: Repetition, idle: IdleBaseline | None) -> list[PhaseResult]:
        results = []
        for name in PHASE_ORDER:
            phase = rep.phases.get(name)
            if phase is None or phase.seconds <= 0:
                continue
            energy = self._energy([(s.t_start_ns, s.t_end_ns) for s in phase.spans])
            figures = phase_figures(
                phase.tokens,
                phase.seconds,
                energy.joules,
                method=energy.method,
                confident=energy.confident,
                peak_w=energy.peak_w,
                idle_w=idle.power_w if idle else None,
                price_per_kwh=self.options.price_per_kwh,
            )
            results.append(PhaseResult(rep.test, rep.index, name, figures,
                                       phase.spans[0].t_start_ns, phase.spans[-1].t_end_ns))
        return results

    def run(self, tests: list[TestSpec], workload_text: dict | None = None) -> RunReport:
        """Idle baseline, then each test's warm-up and repetitions; never raises for a stop."""
        if not self.sampler.running:
            raise RuntimeError("start the sampler before the run")
        self._now_with_samples()
        report = RunReport(self.meta(tests, workload_text), idle=None)
        session_id = self.recorder.begin(report.meta, self.sampler) if self.recorder else None
        report.session_id = session_id
        reps: list[Repetition] = []
        try:
            report.idle = self.measure_idle()
            for test in tests:
                if self.stop.is_set():
                    break
                if self.options.warmup:
                    self.listener.status(f"{test.name}: warm-up")
                    warm_up(self.engine, test, self.stop, on_call=lambda i, n, name=test.name: (
                        self.listener.call_started(name, -1, i, n, time.monotonic_ns())))
                for i in range(self.options.repetitions):
                    if self.stop.is_set():
                        break
                    self.listener.status(f"{test.name}: repetition {i + 1}/{self.options.repetitions}")
                    rep = self._repetition(test, i, session_id)
                    if rep.stopped:
                        break
                    results = self.figures_for(rep, report.idle)
                    reps.append(rep)
                    report.results.extend(results)
                    if self.recorder:
                        self.recorder.repetition(session_id, rep, results, self.options.store_text)
                    self.listener.repetition_done(rep, results)
            report.status = "cancelled" if self.stop.is_set() else "completed"
        except Exception as exc:
            report.status, report.error = "failed", f"{type(exc).__name__}: {exc}"
            raise
        except BaseException:  # a second Ctrl-C: the run was cut short, not broken
            report.status, report.error = "interrupted", "interrupted by the user"
            raise
        finally:
            report.summaries = summarise(report.results, reps)
            report.sampler = self.sampler.stats().as_dict()
            if self.recorder:
                self.recorder.finish(session_id, report.status, _summary_row(report), report.error)
        return report

    def _repetition(self, test: TestSpec, index: int, session_id: int | None) -> Repetition:
        """One repetition, with its tokens streamed to the listener and the recorder."""
        call = 0

        def on_call(i: int, prompt_tokens: int) -> None:
            nonlocal call
            call = i
            self.listener.call_started(test.name, index, i, prompt_tokens, time.monotonic_ns())

        def on_token(event: TokenEvent) -> None:
            if self.recorder:
                self.recorder.token(session_id, test.name, index, call, event, self.options.store_text)
            self.listener.token(event)

        return run_once(self.engine, test, index, temperature=self.options.temperature, stop=self.stop,
                        on_token=on_token, on_call=on_call)


def _weakest(methods: list[str]) -> str:
    from .metrics import METHOD_RANK

    return min(methods, key=METHOD_RANK.__getitem__) if methods else "estimated"


def _summary_row(report: RunReport) -> dict[str, Any]:
    return {
        "idle": None if report.idle is None else report.idle.__dict__,
        "sampler": report.sampler,
        "summary": [s.as_dict() for s in report.summaries],
    }


def summarise(results: list[PhaseResult], reps: list[Repetition]) -> list[TestSummary]:
    summaries = []
    keys = list(dict.fromkeys((r.test, r.phase) for r in results))
    for test, phase in keys:
        rows = [r.figures for r in results if r.test == test and r.phase == phase]
        above = [f.tokens_per_j_above_idle for f in rows]
        cost = [f.cost_per_1m_tokens for f in rows]
        test_reps = [r for r in reps if r.test == test]
        summaries.append(
            TestSummary(
                test=test,
                phase=phase,
                repetitions=len(rows),
                tokens=rows[0].tokens,
                tokens_per_s=mean_sd([f.tokens_per_s for f in rows]),
                tokens_per_j=mean_sd([f.tokens_per_j for f in rows]),
                tokens_per_j_above_idle=None if None in above else mean_sd(above),
                j_per_token=mean_sd([f.j_per_token for f in rows]),
                wh_per_1k_tokens=mean_sd([f.wh_per_1k_tokens for f in rows])[0],
                cost_per_1m_tokens=None if None in cost else mean_sd(cost)[0],
                average_w=mean_sd([f.average_w for f in rows]),
                peak_w=max(f.peak_w for f in rows),
                method=_weakest([f.method for f in rows]),
                confident=all(f.confident for f in rows),
                latency=_latency(test_reps) if phase == "total" else None,
            )
        )
    return summaries


def _latency(reps: list[Repetition]) -> dict | None:
    calls = [(c.generation.t_start_ns, [e.t_ns for e in c.generation.events]) for r in reps for c in r.calls]
    calls = [c for c in calls if c[1]]
    return latency(calls).as_dict() if calls else None
