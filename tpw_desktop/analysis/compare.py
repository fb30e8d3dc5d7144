"""Compare sessions, or a whole sweep: mean ± sd per figure, ratios against a baseline, the frontier.

A variant is a sweep's variant (its rounds pooled) or one session (its
repetitions). Energy figures pool tokens over joules across a variant's
runs, as a test's repetitions are pooled; speeds are means of runs, with
the sd between runs. A comparison whose sessions ran on different
machines, builds or power-measuring methods says so.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from ..errors import TpwError
from ..metrics import weakest_method
from ..record.results import headline

FIGURES = ("tokens_per_s", "tokens_per_j", "j_per_token", "average_w")


@dataclass(frozen=True)
class Stat:
    mean: float | None
    sd: float | None


@dataclass(frozen=True)
class ComparedRow:
    variant: str
    test: str
    phase: str
    runs: int
    tokens_per_s: Stat
    tokens_per_j: Stat
    j_per_token: Stat
    average_w: Stat
    method: str
    confident: bool
    ratio_tokens_per_s: float | None  # against the baseline's same test and phase
    ratio_tokens_per_j: float | None
    model: str | None
    quantization: str | None
    power_limit_w: float | None
    session_ids: tuple[int, ...]
    unknown: dict[str, str] = field(default_factory=dict)


@dataclass
class Comparison:
    rows: list[ComparedRow]
    variants: list[str]
    baseline: str
    differences: list[str]
    sessions: list[dict[str, Any]]
    sweep: dict | None = None

    def main_rows(self) -> list[ComparedRow]:
        """Each variant's headline row: tg for llama-bench tests, the whole calls for a workload."""
        picks = [headline([r for r in self.rows if r.variant == v], lambda r: r.phase) for v in self.variants]
        return [p for p in picks if p is not None]

    def best_power_limit(self) -> ComparedRow | None:
        rows = [r for r in self.main_rows() if r.power_limit_w is not None and r.tokens_per_j.mean is not None]
        return max(rows, key=lambda r: r.tokens_per_j.mean) if rows else None

    def as_dict(self) -> dict:
        return {
            "variants": self.variants,
            "baseline": self.baseline,
            "differences": self.differences,
            "sweep": self.sweep,
            "rows": [asdict(r) for r in self.rows],
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


def _pooled(rows: list[dict]) -> tuple[Stat, Stat, Stat, dict[str, str]]:
    """tok/J, J/token and W pooled over runs (Σ tokens / Σ J), with the sd between runs."""
    unknown = {}
    tokens = [r.get("total_tokens") or r.get("tokens") for r in rows]
    joules = [r.get("joules") for r in rows]
    seconds = [r.get("seconds") for r in rows]
    if any(j is None for j in joules) or any(t is None for t in tokens):
        why = next((r.get("unknown", {}).get("tokens_per_j") for r in rows if r.get("joules") is None), None)
        unknown["tokens_per_j"] = why or "energy unknown in one of the runs"
        if len(rows) == 1:
            r = rows[0]
            return (
                Stat(r.get("tokens_per_j"), r.get("tokens_per_j_sd")),
                Stat(r.get("j_per_token"), None),
                Stat(r.get("average_w"), r.get("average_w_sd")),
                {**unknown, **(r.get("unknown") or {})},
            )
        return Stat(None, None), Stat(None, None), Stat(None, None), unknown
    total_j, total_tokens = sum(joules), sum(tokens)
    spread = _stat([r.get("tokens_per_j") for r in rows]).sd if len(rows) > 1 else rows[0].get("tokens_per_j_sd")
    watts_sd = _stat([r.get("average_w") for r in rows]).sd if len(rows) > 1 else rows[0].get("average_w_sd")
    total_s = sum(s for s in seconds if s) or None
    return (
        Stat(total_tokens / total_j if total_j > 0 else None, spread),
        Stat(total_j / total_tokens if total_tokens else None, None),
        Stat(total_j / total_s if total_s else None, watts_sd),
        unknown,
    )


def _label(session: dict) -> str:
    return session.get("sweep_variant") or f"#{session['id']} {session.get('model') or '?'}"


def compare(
    store, session_ids: list[int] | None = None, *, sweep_id: int | None = None, baseline: str | None = None
) -> Comparison:
    """Sessions side by side (or a sweep's variants, each pooling its rounds)."""
    sweep = None
    if sweep_id is not None:
        sweep = store.sweep(sweep_id)
        session_ids = sweep["session_ids"]
    if not session_ids:
        raise TpwError("nothing to compare: no sessions" + (f" in sweep {sweep_id}" if sweep_id else ""))
    sessions = [store.session(i) for i in session_ids]
    groups: dict[str, list[dict]] = {}
    for s in sessions:
        groups.setdefault(_label(s), []).append(s)
    variants = list(groups)
    if sweep:  # the plan's order, not the order the last round happened to run them
        order = [v["label"] for v in sweep["plan"]["variants"]]
        variants.sort(key=lambda v: order.index(v) if v in order else len(order))
    baseline = baseline or variants[0]
    if baseline not in groups:
        raise TpwError(f"no variant {baseline!r} to compare against (choose from {', '.join(variants)})")
    rows = [row for v in variants for row in _rows(v, groups[v])]
    base = {(r.test, r.phase): r for r in rows if r.variant == baseline}
    rows = [_with_ratios(r, base.get((r.test, r.phase))) for r in rows]
    return Comparison(rows, variants, baseline, differences(sessions), [_facts(s) for s in sessions], sweep)


def _rows(variant: str, sessions: list[dict]) -> list[ComparedRow]:
    keys = list(dict.fromkeys((r["test"], r["phase"]) for s in sessions for r in s.get("summary") or []))
    out = []
    for test, phase in keys:
        runs = [r for s in sessions for r in s.get("summary") or [] if (r["test"], r["phase"]) == (test, phase)]
        tok_j, j_tok, watts, unknown = _pooled(runs)
        speeds = [r.get("tokens_per_s_mean") for r in runs]
        speed = (
            _stat(speeds) if len(runs) > 1 else Stat(runs[0].get("tokens_per_s_mean"), runs[0].get("tokens_per_s_sd"))
        )
        first = sessions[0]
        methods = {r["method"] for r in runs}
        out.append(
            ComparedRow(
                variant,
                test,
                phase,
                len(runs) if len(sessions) > 1 else runs[0].get("repetitions", 1),
                speed,
                tok_j,
                j_tok,
                watts,
                weakest_method(methods),
                all(r.get("confident") for r in runs),
                None,
                None,
                first.get("model"),
                first.get("quantization"),
                first.get("power_limit_w"),
                tuple(s["id"] for s in sessions),
                unknown,
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


def differences(sessions: list[dict]) -> list[str]:
    """What differs between the sessions besides what was compared: a warning each."""
    out = []
    for what, key in (
        ("machines", lambda s: (s.get("hostname"), s.get("cpu"), s.get("gpus"))),
        ("llama.cpp builds", lambda s: (s.get("llama_cpp_version"), s.get("gpu_offload"))),
        ("power-measuring methods", lambda s: s.get("method")),
    ):
        values = {str(key(s)) for s in sessions}
        if len(values) > 1:
            out.append(f"these sessions ran on different {what}: compare with care")
    return out


def _facts(s: dict) -> dict:
    return {
        k: s.get(k)
        for k in (
            "id",
            "started_at",
            "status",
            "model",
            "model_sha256",
            "quantization",
            "n_params",
            "architecture",
            "sweep_variant",
            "sweep_round",
            "power_limit_w",
            "hostname",
            "cpu",
            "ram_gib",
            "os",
            "gpus",
            "llama_cpp_version",
            "gpu_offload",
            "settings",
            "options",
            "method",
            "idle_power_w",
            "idle_method",
        )
    } | {"sources": [{k: src.get(k) for k in ("name", "method", "measures")} for src in s.get("sources", [])]}
