"""How an engine is loaded: the user's settings (llama-bench's defaults) and the build's facts."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, replace


def physical_cores() -> int:
    """Thread count llama-bench uses by default (llama-cpp-python's is half the CPUs)."""
    import psutil

    return psutil.cpu_count(logical=False) or os.cpu_count() or 1


@dataclass(frozen=True)
class EngineSettings:
    """User-facing load settings. ``None`` means "the llama-bench default"."""

    n_gpu_layers: int | None = None  # None: all layers if the build can offload, else 0
    n_ctx: int = 4096
    n_batch: int = 2048  # llama-bench: -b 2048
    n_ubatch: int = 512  # llama-bench: -ub 512
    n_threads: int | None = None  # None: physical cores
    flash_attn: bool | None = None  # None: on, unless the context can't be made with it
    seed: int = 1234

    def resolved(self, gpu_offload_supported: bool) -> EngineSettings:
        return replace(
            self,
            n_gpu_layers=(-1 if gpu_offload_supported else 0) if self.n_gpu_layers is None else self.n_gpu_layers,
            n_threads=self.n_threads or physical_cores(),
        )


@dataclass(frozen=True)
class BuildFacts:
    llama_cpp_python_version: str
    gpu_offload_supported: bool
    system_info: str

    def as_dict(self) -> dict:
        return asdict(self)


def build_facts() -> BuildFacts:
    import llama_cpp

    return BuildFacts(
        llama_cpp_python_version=llama_cpp.__version__,
        gpu_offload_supported=bool(llama_cpp.llama_supports_gpu_offload()),
        system_info=llama_cpp.llama_print_system_info().decode("utf-8", "replace").strip(),
    )
