"""Sweeps: the same tests over several models, values of one setting, and/or GPU power limits.

Every variant runs once per round, rounds interleaved and each round
starting one variant later, so drift in temperature or clocks doesn't
favour any variant. One idle baseline (after a settle) serves every run;
between runs the sweep waits for power to come back near it (with a
timeout, and records how long it took). Each run is a session of one
repetition, tagged with its sweep, variant and round; a comparison pools
a variant's rounds. Stop keeps the finished runs; a power limit is always
put back, also on failure.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from ..engine.llama_engine import load_engine
from ..engine.workloads import TestSpec, load_workloads
from ..errors import TpwError
from ..metrics import IdleBaseline
from ..power import DEFAULT_RATE_HZ, DEFAULT_TDP_W
from ..record.meta import BuildFacts, EngineSettings, ModelRef, RunOptions, SweepTag
from ..record.stored import Settle
from .events import RunEvent, Status
from .meta import run_meta
from .probe import Probe, near_idle
from .recording import recording
from .results import RunReport
from .session import MeasuredRun

SETTINGS = {  # the --setting names, what they change, and how a value is read
    "threads": ("n_threads", int),
    "batch": ("n_batch", int),
    "ngl": ("n_gpu_layers", int),
    "flash-attn": ("flash_attn", lambda v: {"on": True, "off": False}[v]),
}
SETTLE_POLL_S = 0.5


@dataclass(frozen=True)
class Variant:
    label: str
    model: Path | None  # None: the bundled model
    settings: EngineSettings
    power_limit_w: float | None = None


@dataclass(frozen=True)
class SweepPlan:
    kind: str
    variants: tuple[Variant, ...]
    tests: tuple[TestSpec, ...]
    rounds: int
    options: RunOptions
    settle_timeout_s: float = 60.0
    command: str = ""  # what reproduces it

    def as_json(self) -> dict:
        """What the store keeps of the plan (``store`` reads back the variants' labels and the command)."""
        return {
            "kind": self.kind,
            "rounds": self.rounds,
            "tests": [t.ref() for t in self.tests],
            "variants": [{**asdict(v), "model": str(v.model) if v.model else None} for v in self.variants],
            "options": self.options,
            "settle_timeout_s": self.settle_timeout_s,
            "command": self.command,
        }


@dataclass(frozen=True)
class SweepProgress:
    """A run is about to start: which, how many are done, and an estimate of the time left."""

    done: int
    total: int
    variant: str
    round: int
    seconds_left: float | None

    @property
    def text(self) -> str:
        left = f", about {self.seconds_left / 60:.0f} min left" if self.seconds_left else ""
        return f"run {self.done + 1}/{self.total}, {self.variant}, round {self.round + 1}{left}"


@dataclass
class SweepReport:
    plan: SweepPlan
    sweep_id: int | None = None
    runs: list[tuple[Variant, int, RunReport]] = field(default_factory=list)
    settles: list[Settle] = field(default_factory=list)
    status: str = "running"
    error: str | None = None


def parse_setting(spec: str) -> tuple[str, list]:
    """``threads=1,2,4`` -> ("n_threads", [1, 2, 4]), refused with the names it takes otherwise."""
    name, _, values = spec.partition("=")
    if name not in SETTINGS or not values:
        raise TpwError(f"--setting {spec}: expected NAME=V1,V2 with NAME one of {', '.join(SETTINGS)}")
    field_name, read = SETTINGS[name]
    try:
        return field_name, [read(v.strip()) for v in values.split(",") if v.strip()]
    except (ValueError, KeyError):
        raise TpwError(f"--setting {spec}: a value {name} can't take") from None


def plan_sweep(
    models: Sequence[Path | None],
    settings: EngineSettings,
    tests: Sequence[TestSpec],
    rounds: int,
    options: RunOptions,
    *,
    setting: str | None = None,
    power_limits_w: Sequence[float] = (),
    settle_timeout_s: float = 60.0,
    command: str = "",
) -> SweepPlan:
    """Every combination of model x setting value x power limit, labelled by what varies."""
    field_name, values = parse_setting(setting) if setting else (None, [None])
    limits = list(power_limits_w) or [None]
    models = list(models) or [None]
    variants = []
    for model in models:
        for value in values:
            for limit in limits:
                parts = []
                if len(models) > 1:
                    parts.append(Path(model).stem if model else "bundled")
                if field_name:
                    parts.append(f"{setting.partition('=')[0]}={_show(value)}")
                if limit is not None:
                    parts.append(f"{limit:g} W")
                variants.append(
                    Variant(
                        " · ".join(parts) or (Path(model).stem if model else "bundled"),
                        model,
                        replace(settings, **{field_name: value}) if field_name else settings,
                        limit,
                    )
                )
    if len(variants) < 2:
        raise TpwError("a sweep needs at least two variants: two or more models, setting values or GPU power limits")
    kinds = [
        k
        for k, on in (
            ("models", len(models) > 1),
            (setting.partition("=")[0] if setting else "", bool(field_name)),
            ("power_limit", bool(power_limits_w)),
        )
        if on
    ]
    return SweepPlan("+".join(kinds), tuple(variants), tuple(tests), rounds, options, settle_timeout_s, command)


def sweep_command(
    models: Sequence[Path | None],
    tests: Sequence[TestSpec],
    rounds: int,
    *,
    settings: EngineSettings,
    options: RunOptions,
    setting: str | None = None,
    power_limits_w: Sequence[float] = (),
    settle_timeout_s: float = 60.0,
    power_spec: str = "auto",
    tdp_w: float = DEFAULT_TDP_W,
    rate_hz: float = DEFAULT_RATE_HZ,
) -> str:
    """The ``tpw sweep`` command line that runs the same plan (stored with the sweep, quoted in its report).

    Everything the measurement depends on is spelled out where it differs from the command's
    defaults (the context always, as the window chooses it), so the line reproduces a sweep
    started in the window: a test reads back as the same test, settings as the same settings.
    """
    import shlex

    args = ["tpw", "sweep", *(str(m) for m in models if m is not None), "--rounds", str(rounds)]
    args += _test_args(tests)
    default = EngineSettings()
    args += ["--ctx", str(settings.n_ctx)]
    for flag, field_name in (("--ngl", "n_gpu_layers"), ("-b", "n_batch"), ("-t", "n_threads"), ("--seed", "seed")):
        value = getattr(settings, field_name)
        if value is not None and value != getattr(default, field_name):
            args += [flag, str(value)]
    if settings.flash_attn is not None:
        args += ["--flash-attn", _show(settings.flash_attn)]
    if setting:
        args += ["--setting", setting]
    if power_limits_w:
        args += ["--power-limit", ",".join(f"{w:g}" for w in power_limits_w)]
    args += _option_args(options)
    args += ["--settle-timeout", f"{settle_timeout_s:g}", "--power", power_spec]
    for flag, value, usual in (("--tdp-w", tdp_w, DEFAULT_TDP_W), ("--rate-hz", rate_hz, DEFAULT_RATE_HZ)):
        if value != usual:
            args += [flag, f"{value:g}"]
    return shlex.join(args)


def _test_args(tests: Sequence[TestSpec]) -> list[str]:
    """A shipped workload by name, a typed prompt as --prompt, llama-bench's tests as -p/-n."""
    shipped = load_workloads()
    args: list[str] = []
    for t in tests:
        w = t.workload
        if w is None:
            continue
        if shipped.get(w.name) == w:
            args += ["-w", w.name]
        elif len(w.calls) == 1 and len(w.calls[0].messages) == 1:
            args += ["--prompt", w.calls[0].messages[0]["content"], "--max-tokens", str(w.calls[0].max_tokens)]
        else:
            raise TpwError(f"the workload {w.name!r} has no command-line form: save it as a workload file")
    if args:
        return args
    for flag, kind in (("-p", "pp"), ("-n", "tg")):
        args += [flag, ",".join(str(t.n_tokens) for t in tests if t.kind == kind) or "0"]
    return args


def _option_args(options: RunOptions) -> list[str]:
    default = RunOptions()
    args = [] if options.warmup else ["--no-warmup"]
    for flag, field_name in (
        ("--idle-s", "idle_s"),
        ("--settle-s", "settle_s"),
        ("--temperature", "temperature"),
        ("--price", "price_per_kwh"),
        ("--currency", "currency"),
    ):
        value = getattr(options, field_name)
        if value is not None and value != getattr(default, field_name):
            args += [flag, f"{value:g}" if isinstance(value, float) else str(value)]
    return args + ([] if options.store_text else ["--no-text"])


def _show(value) -> str:
    return {True: "on", False: "off"}.get(value, str(value)) if isinstance(value, bool) else str(value)


class SweepRunner:
    """Runs a plan on a started sampler; ``recorder`` (a SessionWriter) keeps it as one sweep."""

    def __init__(
        self,
        plan: SweepPlan,
        sampler,
        *,
        recorder=None,
        listener: Callable[[RunEvent], None] = lambda e: None,
        stop: threading.Event | None = None,
        limiter=None,
        engine_loader=load_engine,
    ):
        if any(v.power_limit_w is not None for v in plan.variants) and limiter is None:
            raise TpwError("a power-limit sweep needs NVML (an NVIDIA GPU and its driver)")
        self.plan = plan
        self.sampler = sampler
        self.recorder = recorder
        self.listener = listener
        self.stop = stop or threading.Event()
        self.limiter = limiter
        self.load = engine_loader
        self.probe = Probe(sampler, listener, self.stop)

    def run(self) -> SweepReport:
        plan = self.plan
        report = SweepReport(plan)
        if self.limiter is not None:
            self.limiter.check([v.power_limit_w for v in plan.variants if v.power_limit_w is not None])
        if self.recorder:
            report.sweep_id = self.recorder.begin_sweep(plan.kind, plan.as_json())
        total, started = len(plan.variants) * plan.rounds, time.monotonic()
        try:
            idle, idle_reason = self._idle()
            for round_ in range(plan.rounds):
                shift = round_ % len(plan.variants)
                for variant in plan.variants[shift:] + plan.variants[:shift]:
                    if self.stop.is_set():
                        break
                    done = len(report.runs)
                    left = (time.monotonic() - started) / done * (total - done) if done else None
                    self.listener(SweepProgress(done, total, variant.label, round_, left))
                    report.settles.append(self._settle(idle, variant.label, round_))
                    report.runs.append(
                        (variant, round_, self._run(variant, round_, (idle, idle_reason), report.sweep_id))
                    )
            report.status = "cancelled" if self.stop.is_set() else "completed"
        except Exception as exc:
            report.status, report.error = "failed", f"{type(exc).__name__}: {exc}"
            raise
        except BaseException:
            report.status, report.error = "interrupted", "interrupted by the user"
            raise
        finally:
            if self.limiter is not None:
                self.limiter.restore()
            if self.recorder and report.sweep_id is not None:
                self.recorder.finish_sweep(report.sweep_id, report.status, report.settles, report.error)
        return report

    def _idle(self) -> tuple[IdleBaseline | None, str | None]:
        """One baseline for the whole sweep (at the original power limit), or None and why."""
        return self.probe.idle(self.plan.options.idle_s, self.plan.options.settle_s)

    def _settle(self, idle: IdleBaseline | None, label: str, round_: int) -> Settle:
        """Wait until power is back near idle (or the timeout), and say how long that took."""
        started = time.monotonic()
        power = None
        while idle is not None and not self.stop.is_set():
            power = self.probe.recent_power_w()
            if power is not None and near_idle(power, idle.power_w):
                break
            if time.monotonic() - started >= self.plan.settle_timeout_s:
                break
            self.listener(Status(f"waiting for power to settle: {power or 0:.1f} W, idle {idle.power_w:.1f} W"))
            self.stop.wait(SETTLE_POLL_S)
        waited = time.monotonic() - started
        settled = None if idle is None or power is None else near_idle(power, idle.power_w)
        return Settle(label, round_, waited, power, settled)

    def _run(
        self, variant: Variant, round_: int, idle: tuple[IdleBaseline | None, str | None], sweep_id: int | None
    ) -> RunReport:
        if variant.power_limit_w is not None:
            self.limiter.set(variant.power_limit_w)
        self.listener(Status(f"{variant.label}: loading the model (round {round_ + 1}/{self.plan.rounds})"))
        options = replace(self.plan.options, repetitions=1, idle_s=0, settle_s=0)
        sweep = SweepTag(sweep_id, variant.label, round_, variant.power_limit_w)
        try:
            engine = self.load(variant.model, variant.settings)
        except TpwError as exc:  # this variant is recorded as failed; the sweep goes on with the others
            return self._failed_load(variant, sweep, options, exc)
        with engine:
            run = MeasuredRun(
                engine,
                self.sampler,
                options,
                recorder=self.recorder,
                listener=self.listener,
                stop=self.stop,
                idle=idle,
                sweep=sweep,
            )
            return run.run(list(self.plan.tests))

    def _failed_load(self, variant: Variant, sweep: SweepTag, options: RunOptions, exc: TpwError) -> RunReport:
        """A variant whose model would not load: a session of its own, failed with the reason."""
        self.listener(Status(f"{variant.label}: {exc}"))
        path = str(variant.model) if variant.model else "bundled model"
        model = ModelRef(path, Path(path).name, None, "?", "?")
        tests = [t.ref() for t in self.plan.tests]
        build = BuildFacts("?", False, "the model did not load")
        report = RunReport(run_meta(model, build, options, tests, self.sampler.sources, sweep=sweep))
        try:
            with recording(report, self.recorder, self.sampler, self.stop):
                raise exc
        except TpwError:
            pass
        return report
