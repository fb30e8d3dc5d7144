"""Compare sessions, or a whole sweep: mean ± sd per figure, ratios against a baseline, the frontier.

A variant is a sweep's variant (its rounds pooled) or one session (its
repetitions). Energy figures pool tokens over joules across a variant's
runs, as a test's repetitions are pooled; speeds are means of runs, with
the sd between runs. A comparison whose sessions measured different things
says so: other machines, builds or power methods, and within one method
another scope (the whole machine's CPU or one process's), TDP, trace or set
of sources.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field, replace

from ..errors import TpwError
from ..metrics import Method, weakest_method
from ..record.fields import label
from ..record.meta import SourceFacts
from ..record.results import TestSummary, headline
from ..record.stored import StoredSession, StoredSweep
from ..record.vocab import Phase, TestKind
from ..store import Store

FIGURES = ("tokens_per_s", "tokens_per_j", "j_per_token", "average_w")


@dataclass(frozen=True)
class Stat:
    mean: float | None
    sd: float | None  # the sample sd (n - 1) between runs; 0 for one run


@dataclass(frozen=True)
class ComparedRow:
    variant: str
    test: str
    kind: TestKind
    phase: Phase
    runs: int
    tokens_per_s: Stat = field(metadata=label(prefix=True))
    tokens_per_j: Stat = field(metadata=label(prefix=True))
    j_per_token: Stat = field(metadata=label(prefix=True))
    average_w: Stat = field(metadata=label(prefix=True))
    method: Method = field(metadata=label("method"))
    confident: bool = field(metadata=label("confident"))
    ratio_tokens_per_s: float | None = field(metadata=label("tok/s vs baseline", 3))  # same test and phase
    ratio_tokens_per_j: float | None = field(metadata=label("tok/J vs baseline", 3))
    model: str | None = None
    quantization: str | None = None
    power_limit_w: float | None = field(default=None, metadata=label("power limit W", 0))
    session_ids: tuple[int, ...] = ()
    concurrency: int | None = None  # a server's level
    unknown: dict[str, str] = field(default_factory=dict)

    @property
    def method_text(self) -> str:
        return self.method + ("" if self.confident else " (low confidence)")


@dataclass
class Comparison:
    rows: list[ComparedRow]
    variants: list[str]
    baseline: str
    differences: list[str]
    sessions: list[StoredSession]
    sweep: StoredSweep | None = None

    def main_rows(self) -> list[ComparedRow]:
        """Each variant's headline row: the same rule as a session's headline (generation, whole calls, server)."""
        picks = [headline([r for r in self.rows if r.variant == v]) for v in self.variants]
        return [p for p in picks if p is not None]

    def best_power_limit(self) -> ComparedRow | None:
        rows = [r for r in self.main_rows() if r.power_limit_w is not None and r.tokens_per_j.mean is not None]
        return max(rows, key=lambda r: r.tokens_per_j.mean) if rows else None

    def as_json(self) -> dict:
        return {
            "variants": self.variants,
            "baseline": self.baseline,
            "differences": self.differences,
            "sweep": self.sweep,
            "rows": self.rows,
            "sessions": self.sessions,
        }


def plus_minus(stat: Stat, digits: int) -> str:
    """``mean ± sd`` as tables print it, or "unknown" (the row says why)."""
    if stat.mean is None:
        return "unknown"
    return f"{stat.mean:.{digits}f}" + (f" ± {stat.sd:.{digits}f}" if stat.sd else "")


def ratio_text(value: float | None) -> str:
    return "unknown" if value is None else f"{value:.3f}x"


def _stat(values: list[float | None]) -> Stat:
    known = [v for v in values if v is not None]
    if not known:
        return Stat(None, None)
    return Stat(statistics.mean(known), statistics.stdev(known) if len(known) > 1 else 0.0)


def _pooled(runs: list[TestSummary]) -> tuple[Stat, Stat, Stat, dict[str, str]]:
    """tok/J, J/token and W pooled over runs (Σ tokens / Σ J, Σ J / Σ s), with the sample sd between runs."""
    if len(runs) == 1:  # one run: its own pooled figures, with the sd between its repetitions
        r, p = runs[0], runs[0].pooled
        return (
            Stat(p.tokens_per_j, r.tokens_per_j_sd),
            Stat(p.j_per_token, r.j_per_token_sd),
            Stat(p.average_w, r.average_w_sd),
            dict(p.unknown),
        )
    joules = [r.pooled.joules for r in runs]
    if any(j is None for j in joules):
        why = next(r.pooled.unknown.get("tokens_per_j") for r in runs if r.pooled.joules is None)
        reason = f"energy unknown in one of the runs ({why or 'no energy'})"
        return Stat(None, None), Stat(None, None), Stat(None, None), dict.fromkeys(FIGURES[1:], reason)
    total_j, total_tokens = sum(joules), sum(r.pooled.tokens for r in runs)
    total_s = sum(r.pooled.seconds for r in runs)
    return (
        Stat(total_tokens / total_j if total_j > 0 else None, _stat([r.pooled.tokens_per_j for r in runs]).sd),
        Stat(total_j / total_tokens if total_tokens else None, _stat([r.pooled.j_per_token for r in runs]).sd),
        Stat(total_j / total_s if total_s > 0 else None, _stat([r.pooled.average_w for r in runs]).sd),
        {},
    )


def compare(
    store: Store, session_ids: list[int] | None = None, *, sweep_id: int | None = None, baseline: str | None = None
) -> Comparison:
    """Sessions side by side (or a sweep's variants, each pooling its rounds)."""
    sweep = None
    if sweep_id is not None:
        sweep = store.sweep(sweep_id)
        session_ids = list(sweep.session_ids)
    if not session_ids:
        raise TpwError("nothing to compare: no sessions" + (f" in sweep {sweep_id}" if sweep_id else ""))
    sessions = [store.session(i) for i in session_ids]
    groups: dict[str, list[StoredSession]] = {}
    for s in sessions:
        groups.setdefault(s.variant, []).append(s)
    variants = list(groups)
    if sweep:  # the plan's order, not the order the last round happened to run them
        order = list(sweep.variants)
        variants.sort(key=lambda v: order.index(v) if v in order else len(order))
    baseline = baseline or variants[0]
    if baseline not in groups:
        raise TpwError(f"no variant {baseline!r} to compare against (choose from {', '.join(variants)})")
    rows = [row for v in variants for row in _rows(v, groups[v])]
    base = {(r.test, r.phase): r for r in rows if r.variant == baseline}
    rows = [_with_ratios(r, base.get((r.test, r.phase))) for r in rows]
    return Comparison(rows, variants, baseline, differences(sessions), sessions, sweep)


def _rows(variant: str, sessions: list[StoredSession]) -> list[ComparedRow]:
    summaries = [r for s in sessions for r in s.outcome.summaries]
    keys = list(dict.fromkeys((r.test, r.kind, r.phase) for r in summaries))
    first = sessions[0]
    out = []
    for test, kind, phase in keys:
        runs = [r for r in summaries if (r.test, r.phase) == (test, phase)]
        tok_j, j_tok, watts, unknown = _pooled(runs)
        if len(runs) > 1:
            speed = _stat([r.tokens_per_s_mean for r in runs])
        else:
            speed = Stat(runs[0].tokens_per_s_mean, runs[0].tokens_per_s_sd)
        out.append(
            ComparedRow(
                variant=variant,
                test=test,
                kind=kind,
                phase=phase,
                runs=len(runs) if len(sessions) > 1 else runs[0].repetitions,
                tokens_per_s=speed,
                tokens_per_j=tok_j,
                j_per_token=j_tok,
                average_w=watts,
                method=weakest_method(r.method for r in runs),
                confident=all(r.confident for r in runs),
                ratio_tokens_per_s=None,
                ratio_tokens_per_j=None,
                model=first.meta.model.file_name,
                quantization=first.meta.model.quantization,
                power_limit_w=first.meta.sweep.power_limit_w if first.meta.sweep else None,
                session_ids=tuple(s.id for s in sessions),
                concurrency=runs[0].concurrency,
                unknown=unknown,
            )
        )
    return out


def _with_ratios(row: ComparedRow, base: ComparedRow | None) -> ComparedRow:
    def ratio(a: Stat, b: Stat | None) -> float | None:
        return a.mean / b.mean if b is not None and a.mean is not None and b.mean else None

    return replace(
        row,
        ratio_tokens_per_s=ratio(row.tokens_per_s, base and base.tokens_per_s),
        ratio_tokens_per_j=ratio(row.tokens_per_j, base and base.tokens_per_j),
    )


def measured_what(source: SourceFacts) -> str:
    """What a source's figures stand for, beyond its method: whose CPU an estimate counts and at what TDP,
    which trace a replay plays, which device a sensor reads."""
    d = source.details
    if source.method == "estimated":
        whose = "one process's CPU time" if d.get("scope") == "process" else "the whole machine's CPU time"
        return f"{whose} x {d.get('tdp_w', '?')} W TDP"
    if source.method == "replayed":
        return f"the trace {d.get('trace', '?')}"
    return source.measures


def differences(sessions: list[StoredSession]) -> list[str]:
    """What differs between the sessions besides what was compared: a warning each."""
    checks = (
        ("machines", lambda s: (s.meta.machine.hostname, s.meta.machine.cpu, [g.gpu_uuid for g in s.meta.gpus])),
        ("llama.cpp builds", lambda s: (s.meta.build.llama_cpp_python_version, s.meta.build.gpu_offload_supported)),
        ("power-measuring methods", lambda s: s.meta.method),
        ("power sources", lambda s: sorted(src.name for src in s.meta.power_sources)),
        ("measurements behind the same method", lambda s: sorted(measured_what(src) for src in s.meta.power_sources)),
    )
    out = []
    for what, key in checks:
        values = {str(key(s)) for s in sessions}
        if len(values) > 1:
            detail = ""
            if what.startswith("measurements"):
                detail = " (" + " vs ".join(sorted(values)) + ")"
            out.append(f"these sessions ran on different {what}{detail}: compare with care")
    return out
