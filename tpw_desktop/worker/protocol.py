"""What crosses between the window and its measuring process: small frozen dataclasses.

Commands go to the measuring process; it answers with ``Batch``es that carry,
in order, the run's events and its state changes, plus the power samples
taken since the last batch. Batches come twice a second when idle and four
times a second while a run streams: never one message per token.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..engine.gguf_info import ModelFacts
from ..engine.settings import BuildFacts, EngineSettings
from ..engine.workloads import TestSpec
from ..run.events import RunEvent
from ..run.results import RunReport
from ..run.session import RunOptions
from ..run.sweep import SweepPlan, SweepProgress

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
    workload_text: dict | None = None
    record: bool = True  # False for an idle measurement on its own


@dataclass(frozen=True)
class StopRun:
    """Stop after the current token (handled at once, on the process's command thread)."""


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

    url: str
    api_model: str
    workload: str
    levels: tuple[int, ...]
    repetitions: int
    options: RunOptions
    timeout_s: float = 60.0


@dataclass(frozen=True)
class ServeMetrics:
    """Serve Prometheus metrics of this process's sampler and runs (port None: stop serving)."""

    port: int | None
    bind: str = "127.0.0.1"


@dataclass(frozen=True)
class Shutdown:
    pass


Command = SelectPower | LoadModel | StartRun | StartSweep | StartEndpoint | Quantize | ServeMetrics | StopRun | Shutdown

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


@dataclass(frozen=True)
class PowerReady:
    spec: str
    sources: tuple[SourceInfo, ...]
    t_ns: int  # when sampling started, on the shared monotonic clock
    chosen: bool = True  # False: the machine's estimate swapped in to measure a server, until the next local run


@dataclass(frozen=True)
class PowerFailed:
    spec: str
    message: str


@dataclass(frozen=True)
class Loading:
    path: Path
    stage: str


@dataclass(frozen=True)
class Loaded:
    facts: ModelFacts
    build: BuildFacts
    settings: EngineSettings
    warnings: tuple[str, ...]
    seconds: float


@dataclass(frozen=True)
class LoadFailed:
    message: str
    still_loaded: str | None  # the model that stays loaded, if any


@dataclass(frozen=True)
class RunStarted:
    t_ns: int
    tests: tuple[str, ...]
    record: bool


@dataclass(frozen=True)
class RunFinished:
    report: RunReport
    record: bool


@dataclass(frozen=True)
class RunFailed:
    message: str
    report: RunReport | None


@dataclass(frozen=True)
class SweepStarted:
    t_ns: int
    total_runs: int


@dataclass(frozen=True)
class SweepFinished:
    status: str  # completed | cancelled | failed
    sweep_id: int | None  # None when nothing was saved
    runs: int
    error: str | None


@dataclass(frozen=True)
class QuantizeProgress:
    tensors_done: int
    tensors_total: int


@dataclass(frozen=True)
class QuantizeFinished:
    path: Path
    description: str


@dataclass(frozen=True)
class QuantizeFailed:
    message: str


@dataclass(frozen=True)
class EndpointFinished:
    status: str  # completed | cancelled | failed
    session_id: int | None
    error: str | None
    levels: tuple[dict, ...]  # each concurrency level's summary, as stored


@dataclass(frozen=True)
class MetricsServing:
    url: str | None  # None: not serving
    problem: str | None = None


@dataclass(frozen=True)
class SourcesFailing:
    """Sources whose recent reads all failed; empty once they answer again."""

    names: tuple[str, ...]
    detail: str | None


State = (
    Started
    | PowerReady
    | PowerFailed
    | Loading
    | Loaded
    | LoadFailed
    | RunStarted
    | RunFinished
    | RunFailed
    | SweepStarted
    | SweepProgress
    | SweepFinished
    | QuantizeProgress
    | QuantizeFinished
    | QuantizeFailed
    | EndpointFinished
    | MetricsServing
    | SourcesFailing
)


@dataclass(frozen=True)
class SampleBlock:
    """New samples of one source: times (ns, shared clock) and watts."""

    source: int
    t_ns: np.ndarray
    power_w: np.ndarray


@dataclass(frozen=True)
class Batch:
    items: tuple[State | RunEvent, ...] = ()
    samples: tuple[SampleBlock, ...] = ()
    sampling_hz: float | None = None
