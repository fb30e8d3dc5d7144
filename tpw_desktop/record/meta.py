"""What a run ran on and with: machine, model, build, settings, power sources, options.

One ``RunMeta`` per session, built once (``run.meta``) for a local model
and for a server alike; the store keeps it, and every view reads it back
as the same typed record, never as a dict.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..metrics import Method
from .vocab import TestKind

Scalar = str | int | float | bool | None
# A workload's chat calls, as sent: {workload name: [[{"role": ..., "content": ...}, ...], ...]}.
WorkloadText = dict[str, list[list[dict[str, str]]]]


@dataclass(frozen=True)
class MachineFacts:
    hostname: str
    cpu: str
    cpu_logical: int | None
    cpu_physical: int | None
    ram_gib: float | None
    os: str
    python: str


@dataclass(frozen=True)
class ModelRef:
    """The model a session measured: a GGUF file, or a server's model (``server`` set, no file)."""

    path: str
    file_name: str
    name: str | None
    architecture: str
    quantization: str
    n_params: int | None = None
    n_layers: int | None = None
    n_ctx_train: int | None = None
    size_bytes: int | None = None
    server: str | None = None  # the server's URL, credentials removed


@dataclass(frozen=True)
class BuildFacts:
    """The llama.cpp a run used (a server's run has none of its own: ``llama_cpp_python_version`` "endpoint")."""

    llama_cpp_python_version: str
    gpu_offload_supported: bool
    system_info: str


@dataclass(frozen=True)
class EngineSettings:
    """User-facing load settings. ``None`` means "the llama-bench default" (``engine.settings.resolved``)."""

    n_gpu_layers: int | None = None  # None: all layers if the build can offload, else 0
    n_ctx: int = 4096
    n_batch: int = 2048  # llama-bench: -b 2048
    n_ubatch: int = 512  # llama-bench: -ub 512
    n_threads: int | None = None  # None: physical cores
    flash_attn: bool | None = None  # None: on, unless the context can't be made with it
    seed: int = 1234


@dataclass(frozen=True)
class ServerTarget:
    """A server tpw didn't start, as measured (``tpw bench --endpoint``)."""

    url: str  # credentials removed: this is what is stored, printed and exported
    api_model: str
    concurrency: tuple[int, ...]
    repetitions_per_client: int


@dataclass(frozen=True)
class SourceFacts:
    """A power source as a result's reader needs it: what it measures, how, and the device's facts."""

    name: str
    method: Method
    measures: str
    gpu_name: str | None = None
    gpu_uuid: str | None = None
    driver: str | None = None
    power_limit_w: float | None = None
    details: dict[str, Scalar] = field(default_factory=dict)  # the rest a source reports (zone, TDP, trace ...)

    @classmethod
    def of(cls, name: str, method: Method, measures: str, info: dict[str, Any]) -> SourceFacts:
        """From a source's ``info()``: the GPU facts in their fields, everything else in ``details``."""
        typed = ("gpu_name", "gpu_uuid", "driver", "power_limit_w")
        details = {k: v if isinstance(v, Scalar) else str(v) for k, v in info.items() if k not in typed}
        return cls(name, method, measures, *(info.get(k) for k in typed), details)


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


@dataclass(frozen=True)
class TestRef:
    """A test as a run names it, with its kind (stored: never parsed back from the name)."""

    __test__ = False  # not a pytest class

    name: str
    kind: TestKind


@dataclass(frozen=True)
class SweepTag:
    """Which sweep, variant and round a session is."""

    id: int | None
    variant: str
    round: int
    power_limit_w: float | None = None


@dataclass(frozen=True)
class RunMeta:
    tool_version: str
    machine: MachineFacts
    model: ModelRef
    build: BuildFacts
    options: RunOptions
    tests: tuple[TestRef, ...]
    power_sources: tuple[SourceFacts, ...]
    method: Method  # the weakest of the sources'
    settings: EngineSettings | None = None  # a local model's; None for a server
    load_ms: float | None = None
    server: ServerTarget | None = None
    warnings: tuple[str, ...] = ()
    workload: WorkloadText | None = None
    sweep: SweepTag | None = None

    @property
    def on_gpu(self) -> bool:
        return self.build.gpu_offload_supported and self.settings is not None and self.settings.n_gpu_layers != 0

    @property
    def gpus(self) -> tuple[SourceFacts, ...]:
        return tuple(s for s in self.power_sources if s.gpu_name is not None)
