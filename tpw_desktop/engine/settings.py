"""How an engine is loaded: the user's settings resolved to llama-bench's defaults, and the build's facts."""

from __future__ import annotations

import os
from dataclasses import replace

from ..record.meta import BuildFacts, EngineSettings


def physical_cores() -> int:
    """Thread count llama-bench uses by default (llama-cpp-python's is half the CPUs)."""
    import psutil

    return psutil.cpu_count(logical=False) or os.cpu_count() or 1


def resolved(settings: EngineSettings, gpu_offload_supported: bool) -> EngineSettings:
    """The defaults made concrete: every layer on the GPU when the build can offload, physical-core threads."""
    return replace(
        settings,
        n_gpu_layers=(-1 if gpu_offload_supported else 0) if settings.n_gpu_layers is None else settings.n_gpu_layers,
        n_threads=settings.n_threads or physical_cores(),
    )


def build_facts() -> BuildFacts:
    import llama_cpp

    return BuildFacts(
        llama_cpp_python_version=llama_cpp.__version__,
        gpu_offload_supported=bool(llama_cpp.llama_supports_gpu_offload()),
        system_info=llama_cpp.llama_print_system_info().decode("utf-8", "replace").strip(),
    )
