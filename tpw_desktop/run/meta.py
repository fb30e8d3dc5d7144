"""A run's ``RunMeta``, built in one place for a local model and for a server alike."""

from __future__ import annotations

import os
import platform

from .. import __version__
from ..metrics import weakest_method
from ..power import source_facts
from ..record.meta import (
    BuildFacts,
    EngineSettings,
    MachineFacts,
    ModelRef,
    RunMeta,
    RunOptions,
    ServerTarget,
    SweepTag,
    TestRef,
    WorkloadText,
)


def machine_facts() -> MachineFacts:
    """The facts about this machine that a result needs to be compared fairly."""
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
    return MachineFacts(
        hostname=platform.node(),
        cpu=cpu,
        cpu_logical=os.cpu_count(),
        cpu_physical=psutil.cpu_count(logical=False),
        ram_gib=round(psutil.virtual_memory().total / (1 << 30), 1),
        os=f"{platform.system()} {platform.release()}",
        python=platform.python_version(),
    )


def run_meta(
    model: ModelRef,
    build: BuildFacts,
    options: RunOptions,
    tests: list[TestRef],
    sources: list,
    *,
    settings: EngineSettings | None = None,
    load_ms: float | None = None,
    server: ServerTarget | None = None,
    warnings: tuple[str, ...] = (),
    workload: WorkloadText | None = None,
    sweep: SweepTag | None = None,
) -> RunMeta:
    """``sources``: the sampler's power sources (their facts and the weakest method are taken now)."""
    facts = tuple(source_facts(s) for s in sources)
    return RunMeta(
        tool_version=__version__,
        machine=machine_facts(),
        model=model,
        build=build,
        options=options,
        tests=tuple(tests),
        power_sources=facts,
        method=weakest_method(s.method for s in facts),
        settings=settings,
        load_ms=load_ms,
        server=server,
        warnings=tuple(warnings),
        workload=workload,
        sweep=sweep,
    )
