"""What crosses between the window and its measuring process: small frozen dataclasses.

Commands go to the measuring process. Each command that is a job (choose a
power source, load a model, run, sweep, measure a server, quantize) is
answered the same way: ``JobStarted``, any number of ``JobProgress``, then
one ``JobFinished`` with a typed status and result. A new job touches the
command, its result type and the one place that shows it.

Answers travel in ``Batch``es that carry, in order, the job messages and the
run's events, plus the power samples (with their energy) taken since the
last batch. Batches come twice a second when idle and four times a second
while a run streams: never one message per token.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from ..engine.gguf_info import ModelFacts
from ..engine.workloads import TestSpec
from ..record.meta import BuildFacts, EngineSettings, RunOptions
from ..run.events import RunEvent
from ..run.results import RunReport
from ..run.sweep import SweepPlan

# --- to the measuring process ---------------------------------------------------------------


@dataclass(frozen=True)
class SelectPower:
    spec: str
    tdp_w: float
    rate_hz: float
    auto_estimate: str = "estimate-process"  # without a sensor, book only the measuring process's CPU


@dataclass(frozen=True)
class LoadModel:
    path: Path
    settings: EngineSettings


@dataclass(frozen=True)
class StartRun:
    tests: tuple[TestSpec, ...]
    options: RunOptions
    record: bool = True  # False for an idle measurement on its own


@dataclass(frozen=True)
class StartSweep:
    """A sweep over the plan's variants; the loaded model is closed for it and loaded again after."""

    plan: SweepPlan


@dataclass(frozen=True)
class Quantize:
    source: Path
    qtype: str
    output: Path | None = None
    allow_requantize: bool = False


@dataclass(frozen=True)
class StartEndpoint:
    """Measure an OpenAI-compatible server at 1..N clients (``tpw bench --endpoint``)."""

    url: str  # as typed, credentials included: used for the requests only, never stored or shown
    api_model: str
    workload: str
    levels: tuple[int, ...]
    repetitions: int
    options: RunOptions
    timeout_s: float = 60.0
    api_key: str | None = None

    def __repr__(self) -> str:  # a command may be logged: never with its secrets
        return f"StartEndpoint(api_model={self.api_model!r}, workload={self.workload!r}, levels={self.levels})"


@dataclass(frozen=True)
class ServeMetrics:
    """Serve Prometheus metrics of this process's sampler and runs (port None: stop serving)."""

    port: int | None
    bind: str = "127.0.0.1"


@dataclass(frozen=True)
class StopRun:
    """Stop after the current token (handled at once, on the process's command thread)."""


@dataclass(frozen=True)
class Shutdown:
    pass


Job = SelectPower | LoadModel | StartRun | StartSweep | StartEndpoint | Quantize
Command = Job | ServeMetrics | StopRun | Shutdown
JobKind = Literal["power", "load", "run", "sweep", "endpoint", "quantize"]
JOB_KINDS: dict[type, JobKind] = {
    SelectPower: "power",
    LoadModel: "load",
    StartRun: "run",
    StartSweep: "sweep",
    StartEndpoint: "endpoint",
    Quantize: "quantize",
}
JobStatus = Literal["completed", "failed", "cancelled", "interrupted"]

# --- from the measuring process ---------------------------------------------------------------


@dataclass(frozen=True)
class Started:
    pid: int
    db_path: str | None
    save_problem: str | None  # the database couldn't be opened: runs go on, unsaved
    build: BuildFacts  # the llama.cpp this process runs (the window never loads it)


@dataclass(frozen=True)
class SourceInfo:
    name: str
    method: str
    measures: str
    resolution_s: float | None = None  # its known resolution (else measured from the data)
    still_counter_means_zero: bool = False  # a counter of events: not moving means none happened


@dataclass(frozen=True)
class PowerReady:
    spec: str
    sources: tuple[SourceInfo, ...]
    t_ns: int  # when sampling started, on the shared monotonic clock
    chosen: bool = True  # False: the machine's estimate swapped in to measure a server, until the next local run


@dataclass(frozen=True)
class Loaded:
    facts: ModelFacts
    build: BuildFacts
    settings: EngineSettings
    warnings: tuple[str, ...]
    seconds: float


@dataclass(frozen=True)
class SweepDone:
    sweep_id: int | None  # None when nothing was saved
    runs: int


@dataclass(frozen=True)
class Quantized:
    path: Path
    description: str


JobResult = PowerReady | Loaded | RunReport | SweepDone | Quantized


@dataclass(frozen=True)
class JobStarted:
    job: JobKind
    t_ns: int  # on the shared monotonic clock
    detail: str = ""  # the tests of a run, the file being loaded ...


@dataclass(frozen=True)
class JobProgress:
    job: JobKind
    message: str
    done: int | None = None  # of ``total`` (tensors quantized, runs of a sweep); None: no count
    total: int | None = None


@dataclass(frozen=True)
class JobFinished:
    job: JobKind
    status: JobStatus
    result: JobResult | None = None  # a failed run keeps its partial report; a failed load keeps nothing
    error: str | None = None
    still_loaded: str | None = None  # a failed load: the model that stays loaded, if any


@dataclass(frozen=True)
class MetricsServing:
    url: str | None  # None: not serving
    problem: str | None = None


@dataclass(frozen=True)
class SourcesFailing:
    """Sources whose recent reads all failed; empty once they answer again."""

    names: tuple[str, ...]
    detail: str | None


Notice = Started | JobStarted | JobProgress | JobFinished | MetricsServing | SourcesFailing


@dataclass(frozen=True)
class SampleBlock:
    """New samples of one source: times (ns, shared clock), watts, and its cumulative energy (J, NaN
    without a counter or where a read failed) so the window computes windows as the run does."""

    source: int
    t_ns: np.ndarray
    power_w: np.ndarray
    energy_j: np.ndarray


@dataclass(frozen=True)
class Batch:
    items: tuple[Notice | RunEvent, ...] = ()
    samples: tuple[SampleBlock, ...] = ()
    sampling_hz: float | None = None
