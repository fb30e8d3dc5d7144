"""Typed records built by hand, with known figures, for tests of what reads them (compare, history, tables)."""

from __future__ import annotations

from tpw_desktop.metrics import WindowEnergy, phase_figures
from tpw_desktop.record.meta import (
    BuildFacts,
    EngineSettings,
    MachineFacts,
    ModelRef,
    RunMeta,
    RunOptions,
    SourceFacts,
    TestRef,
)
from tpw_desktop.record.results import TestSummary
from tpw_desktop.record.stored import RunOutcome, StoredSession

ESTIMATE = SourceFacts("estimate", "estimated", "CPU", details={"scope": "machine", "tdp_w": 65.0})


def summary(
    test="tg128",
    phase="tg",
    *,
    tokens=128,
    joules=64.0,
    seconds=1.0,
    kind="tg",
    reps=1,
    speed=None,
    method="counter",
    tokens_per_j_sd=None,
    average_w_sd=None,
) -> TestSummary:
    """A summary whose pooled figures are ``tokens`` over ``joules`` in ``seconds`` (error 1% of the joules)."""
    figures = phase_figures(tokens, WindowEnergy(joules, seconds, method, joules * 0.01, 1, 50, 50, joules / seconds))
    return TestSummary(
        test,
        kind,
        phase,
        reps,
        tokens,
        tokens / seconds if speed is None else speed,
        None,
        figures,
        tokens_per_j_sd=tokens_per_j_sd,
        average_w_sd=average_w_sd,
    )


def session(
    session_id=1,
    *,
    summaries=(),
    host="box",
    sources=(ESTIMATE,),
    method="estimated",
    version="0.3.36",
    model="tiny.gguf",
) -> StoredSession:
    meta = RunMeta(
        tool_version="test",
        machine=MachineFacts(host, "cpu", 2, 2, 24.0, "Linux", "3.11"),
        model=ModelRef(f"/m/{model}", model, None, "llama", "F32"),
        build=BuildFacts(version, False, "CPU"),
        options=RunOptions(),
        tests=(TestRef("tg128", "tg"),),
        power_sources=tuple(sources),
        method=method,
        settings=EngineSettings(),
    )
    return StoredSession(
        session_id, "2026-12-01T10:00:00", None, "completed", None, 0, meta, RunOutcome(None, None, tuple(summaries))
    )
