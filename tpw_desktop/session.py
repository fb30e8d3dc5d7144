"""One measured run: engine + power sampler (+ store), from idle baseline to summary.

Data flows one way: the engine and the sampler produce timestamped events,
this module cuts windows and computes figures, a recorder persists them, and
a listener (the CLI's progress line, the measuring process's pipe to the
window) hears typed events. The same code serves ``tpw bench`` and the window.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from . import __version__
from .engine.llama_engine import Engine, TokenEvent
from .engine.workloads import TestSpec
from .errors import TpwError
from .events import CallStarted, CooldownChecked, IdleMeasured, Marked, RepetitionDone, RunEvent, SaveProblem, Status
from .metrics import (
    METHOD_RANK,
    IdleBaseline,
    PhaseFigures,
    WindowEnergy,
    idle_baseline,
    latency,
    mean_sd,
    phase_figures,
    pooled_figures,
)
from .power import Sampler, source_summary
from .runner import Repetition, run_once, warm_up

PHASE_ORDER = ("pp", "tg", "total")
# After a cool-down, power counts as back near idle within this share of the
# baseline (or this many watts, for a baseline near zero).
NEAR_IDLE_SHARE = 0.10
NEAR_IDLE_MIN_W = 1.0
COOLDOWN_PROBE_S = 0.5  # the cool-down's last half second is compared with idle

Listener = Callable[[RunEvent], None]


def _ignore(_event: RunEvent) -> None:
    pass


@dataclass(frozen=True)
class RunOptions:
    repetitions: int = 5
    warmup: bool = True
    idle_s: float = 3.0  # 0 skips the idle baseline
    # Left alone before the idle window: GPUs stay in a high power state for
    # seconds after work (MLPerf Power and ML.ENERGY cool down first).
    settle_s: float = 3.0
    delay_s: float = 0.0  # cool-down between tests, as llama-bench's --delay
    price_per_kwh: float | None = None
    currency: str = "USD"
    temperature: float = 0.0
    store_text: bool = True

    def as_dict(self) -> dict:
        return asdict(self)


class Recorder(Protocol):
    """Where a run is persisted (``store.SessionWriter``); absent with ``--no-save``.

    ``begin`` and ``finish`` raise a TpwError when the database takes no write;
    ``problem`` says why writes are failing meanwhile (the run goes on).
    """

    def begin(self, meta: dict[str, Any], sampler: Sampler) -> int: ...

    def idle(self, session_id: int, summary: dict[str, Any]) -> None: ...

    def token(self, session_id: int, test: str, repetition: int, call: int, event: TokenEvent, store_text: bool) -> None: ...

    def repetition(self, session_id: int, repetition: Repetition, results: list[PhaseResult], store_text: bool) -> None: ...

    def finish(self, session_id: int, status: str, summary: dict[str, Any], error: str | None = None) -> None: ...

    def problem(self) -> str | None: ...


@dataclass(frozen=True)
class PhaseResult:
    """One phase of one repetition, with its energy window and figures.

    ``t_start_ns``/``t_end_ns`` bound the phase on the engine's clock (a
    multi-call workload's phase is several spans inside them).
    """

    test: str
    repetition: int
    phase: str
    window: WindowEnergy
    figures: PhaseFigures
    t_start_ns: int
    t_end_ns: int

    def as_dict(self) -> dict:
        return {"test": self.test, "repetition": self.repetition, "phase": self.phase,
                "t_start_ns": self.t_start_ns, "t_end_ns": self.t_end_ns, **self.figures.as_dict()}


SPREAD_FIGURES = ("tokens_per_j", "j_per_token", "average_w", "tokens_per_j_above_idle")


@dataclass(frozen=True)
class TestSummary:
    """A test's phase over its repetitions.

    Speed is the mean and sample sd of per-repetition tokens/s, as llama-bench
    reports it. Energy figures are pooled: total tokens over total joules
    (never a mean of ratios, which one repetition barely above idle would
    dominate), with the per-repetition sd kept as the spread.
    """

    __test__ = False  # not a pytest class

    test: str
    phase: str
    repetitions: int
    tokens_per_repetition: int
    tokens_per_s: tuple[float | None, float | None]
    pooled: PhaseFigures
    spread_sd: dict[str, float | None]
    latency: dict | None = None

    @property
    def method(self) -> str:
        return self.pooled.method

    @property
    def confident(self) -> bool:
        return self.pooled.confident

    def as_dict(self) -> dict:
        p = self.pooled.as_dict()
        return {
            "test": self.test,
            "phase": self.phase,
            "repetitions": self.repetitions,
            "tokens": self.tokens_per_repetition,
            "tokens_per_s_mean": self.tokens_per_s[0],
            "tokens_per_s_sd": self.tokens_per_s[1],
            **{k: p[k] for k in ("seconds", "joules", "joules_error", "joules_above_idle", "average_w", "peak_w",
                                 "tokens_per_j", "j_per_token", "wh_per_1k_tokens", "cost_per_1m_tokens",
                                 "tokens_per_j_above_idle", "j_per_token_above_idle", "method", "confident",
                                 "low_confidence", "unknown")},
            "total_tokens": p["tokens"],
            **{f"{k}_sd": v for k, v in self.spread_sd.items()},
            "pooled": True,
            "latency": self.latency,
        }


@dataclass
class RunReport:
    meta: dict[str, Any]
    idle: IdleBaseline | None
    idle_reason: str | None = None  # why there is no baseline
    results: list[PhaseResult] = field(default_factory=list)
    summaries: list[TestSummary] = field(default_factory=list)
    cooldowns: list[CooldownChecked] = field(default_factory=list)
    status: str = "running"
    error: str | None = None
    session_id: int | None = None
    sampler: dict | None = None
    save_error: str | None = None  # the database did not take the outcome: say so, save it elsewhere

    def summary_row(self) -> dict[str, Any]:
        """What the store keeps of the run's outcome (the session row's summary columns)."""
        return {
            "idle": None if self.idle is None else asdict(self.idle),
            "idle_reason": self.idle_reason,
            "sampler": self.sampler,
            "summary": [s.as_dict() for s in self.summaries],
            "cooldowns": [asdict(c) for c in self.cooldowns],
        }

    def as_dict(self) -> dict:
        return {
            **self.meta,
            "session_id": self.session_id,
            "status": self.status,
            "error": self.error,
            "save_error": self.save_error,
            **self.summary_row(),
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


def near_idle(power_w: float, idle_w: float) -> bool:
    """Whether power is back within the tolerance of the idle baseline."""
    return power_w <= idle_w + max(NEAR_IDLE_SHARE * idle_w, NEAR_IDLE_MIN_W)


class MeasuredRun:
    """Runs tests on an engine while a sampler measures, on the engine's thread."""

    def __init__(
        self,
        engine: Engine,
        sampler: Sampler,
        options: RunOptions = RunOptions(),
        *,
        recorder: Recorder | None = None,
        listener: Listener = _ignore,
        stop: threading.Event | None = None,
    ):
        self.engine = engine
        self.sampler = sampler
        self.options = options
        self.recorder = recorder
        self.listener = listener
        self.stop = stop or threading.Event()
        self.report: RunReport | None = None  # also there when run() was cut short by an exception
        self._save_problem: str | None = None

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
            "method": weakest([s["method"] for s in sources]),
        }

    def _wait(self, seconds: float, kind: str) -> tuple[int, int] | None:
        """Leave the machine alone for ``seconds`` (a mark on the charts); None if stopped meanwhile."""
        t0 = self._now_with_samples()
        if self.stop.wait(seconds):
            return None
        t1 = time.monotonic_ns()
        self.listener(Marked(kind, t0, t1))
        return t0, t1

    def measure_idle(self) -> tuple[IdleBaseline | None, str | None]:
        """Settle, then measure idle power: the baseline, or None and why."""
        o = self.options
        if o.idle_s <= 0:
            return None, "the idle baseline was turned off"
        if o.settle_s > 0:
            self.listener(Status(f"letting the machine settle for {o.settle_s:g} s"))
            if self._wait(o.settle_s, "settle") is None:
                return None, "stopped before the idle baseline"
        self.listener(Status(f"measuring idle power for {o.idle_s:g} s"))
        span = self._wait(o.idle_s, "idle")
        if span is None:
            return None, "stopped before the idle baseline"
        window = self._energy([span])
        baseline = idle_baseline(window, o.settle_s)
        reason = None if baseline else f"idle power unknown: {window.unknown_reason}"
        self.listener(IdleMeasured(baseline, reason))
        return baseline, reason

    def _cooldown(self, test: TestSpec, idle: IdleBaseline | None) -> CooldownChecked | None:
        """llama-bench's --delay between tests, then whether power came back near idle."""
        seconds = self.options.delay_s
        self.listener(Status(f"cooling down for {seconds:g} s before {test.name}"))
        span = self._wait(seconds, "cooldown")
        if span is None:
            return None
        probe = self._energy([(max(span[0], span[1] - round(COOLDOWN_PROBE_S * 1e9)), span[1])])
        power = probe.average_w
        checked = CooldownChecked(test.name, seconds, power, idle.power_w if idle else None,
                                  near_idle(power, idle.power_w) if power is not None and idle else None)
        self.listener(checked)
        return checked

    def _now_with_samples(self) -> int:
        """Now, once the sampler has caught up with it: a window starting later has a sample at its left edge."""
        t = time.monotonic_ns()
        self.sampler.wait_until(t)
        return t

    def _energy(self, spans: list[tuple[int, int]]) -> WindowEnergy:
        self.sampler.wait_until(max(end for _, end in spans))
        return self.sampler.spans_energy(spans)

    def figures_for(self, rep: Repetition, idle: IdleBaseline | None, idle_reason: str | None) -> list[PhaseResult]:
        results = []
        for name in PHASE_ORDER:
            phase = rep.phases.get(name)
            if phase is None or phase.seconds <= 0:
                continue
            window = self._energy([(s.t_start_ns, s.t_end_ns) for s in phase.spans])
            figures = phase_figures(phase.tokens, window, idle=idle, idle_reason=idle_reason,
                                    price_per_kwh=self.options.price_per_kwh)
            results.append(PhaseResult(rep.test, rep.index, name, window, figures,
                                       phase.spans[0].t_start_ns, phase.spans[-1].t_end_ns))
        return results

    def run(self, tests: list[TestSpec], workload_text: dict | None = None) -> RunReport:
        """Settle and idle baseline, then each test's warm-up and repetitions; never raises for a stop."""
        if not self.sampler.running:
            raise RuntimeError("start the sampler before the run")
        self._now_with_samples()
        self.check_fits(tests)
        report = self.report = RunReport(self.meta(tests, workload_text), idle=None)
        session_id = self.recorder.begin(report.meta, self.sampler) if self.recorder else None
        report.session_id = session_id
        reps: list[Repetition] = []
        try:
            report.idle, report.idle_reason = self.measure_idle()
            if self.recorder:
                self.recorder.idle(session_id, report.summary_row())
            for number, test in enumerate(tests):
                if self.stop.is_set():
                    break
                if number and self.options.delay_s > 0:
                    checked = self._cooldown(test, report.idle)
                    if checked:
                        report.cooldowns.append(checked)
                self._run_test(test, session_id, report, reps)
            report.status = "cancelled" if self.stop.is_set() else "completed"
        except Exception as exc:
            report.status, report.error = "failed", f"{type(exc).__name__}: {exc}"
            raise
        except BaseException:  # a second Ctrl-C: the run was cut short, not broken
            report.status, report.error = "interrupted", "interrupted by the user"
            raise
        finally:
            report.summaries = summarise(report.results, reps, report.idle, report.idle_reason,
                                         self.options.price_per_kwh)
            report.sampler = self.sampler.stats().as_dict()
            if self.recorder:
                try:
                    self.recorder.finish(session_id, report.status, report.summary_row(), report.error)
                except TpwError as exc:  # the measurement stands; the caller shows it and saves it elsewhere
                    report.save_error = str(exc)
        return report

    def check_fits(self, tests: list[TestSpec]) -> None:
        """Every call of every test fits the context: said now, not after the idle baseline."""
        n_ctx = self.engine.n_ctx
        for test in tests:
            needed = self.engine.tokens_needed(test)
            if needed > n_ctx:
                raise TpwError(f"{test.name} needs {needed} tokens of context, but the model was loaded with "
                               f"{n_ctx}: raise the context size (--ctx)")

    def _run_test(self, test: TestSpec, session_id: int | None, report: RunReport, reps: list[Repetition]) -> None:
        if self.options.warmup:
            self.listener(Status(f"{test.name}: warm-up"))
            warm_up(self.engine, test, self.stop, emit=self.listener)
        for i in range(self.options.repetitions):
            if self.stop.is_set():
                return
            self.listener(Status(f"{test.name}: repetition {i + 1}/{self.options.repetitions}"))
            rep = self._repetition(test, i, session_id)
            if rep.stopped:
                return
            results = self.figures_for(rep, report.idle, report.idle_reason)
            reps.append(rep)
            report.results.extend(results)
            if self.recorder:
                self.recorder.repetition(session_id, rep, results, self.options.store_text)
                self._report_save_problem()
            self.listener(RepetitionDone(rep.test, rep.index, tuple(results)))

    def _report_save_problem(self) -> None:
        problem = self.recorder.problem()
        if problem and problem != self._save_problem:
            self.listener(SaveProblem(f"the session database is not taking writes ({problem}): the run goes on, "
                                      "and its results will be shown and kept"))
        self._save_problem = problem

    def _repetition(self, test: TestSpec, index: int, session_id: int | None) -> Repetition:
        """One repetition, with its tokens streamed to the listener and the recorder."""
        call = 0

        def emit(event: RunEvent) -> None:
            nonlocal call
            if isinstance(event, TokenEvent):
                if self.recorder:
                    self.recorder.token(session_id, test.name, index, call, event, self.options.store_text)
            elif isinstance(event, CallStarted):
                call = event.call
            self.listener(event)

        return run_once(self.engine, test, index, temperature=self.options.temperature, stop=self.stop, emit=emit)


def weakest(methods: list[str]) -> str:
    return min(methods, key=METHOD_RANK.__getitem__) if methods else "estimated"


def summarise(results: list[PhaseResult], reps: list[Repetition], idle: IdleBaseline | None,
              idle_reason: str | None, price_per_kwh: float | None) -> list[TestSummary]:
    summaries = []
    keys = list(dict.fromkeys((r.test, r.phase) for r in results))
    for test, phase in keys:
        rows = [r for r in results if r.test == test and r.phase == phase]
        figures = [r.figures for r in rows]
        pooled = pooled_figures([(r.figures.tokens, r.window) for r in rows], idle=idle,
                                idle_reason=idle_reason, price_per_kwh=price_per_kwh)
        test_reps = [r for r in reps if r.test == test]
        summaries.append(TestSummary(
            test=test,
            phase=phase,
            repetitions=len(rows),
            tokens_per_repetition=figures[0].tokens,
            tokens_per_s=mean_sd([f.tokens_per_s for f in figures]),
            pooled=pooled,
            spread_sd={k: mean_sd([getattr(f, k) for f in figures])[1] for k in SPREAD_FIGURES},
            latency=_latency(test_reps) if phase == "total" else None,
        ))
    return summaries


def _latency(reps: list[Repetition]) -> dict | None:
    calls = [(c.generation.t_start_ns, [e.t_ns for e in c.generation.events]) for r in reps for c in r.calls]
    calls = [c for c in calls if c[1]]
    return latency(calls).as_dict() if calls else None
