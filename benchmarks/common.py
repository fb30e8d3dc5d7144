"""What every benchmark returns, so `make bench` can write one report of them all.

Each benchmark module has ``run(quick: bool) -> Result``: figures checked
against a goal, scaling tables (how a cost grows with history length,
sampling rate, number of sources or model size), and raw numbers for the
JSON. ``quick`` is the smoke run the test suite makes so no benchmark rots:
same code paths, seconds instead of minutes, figures not meant to be read.
"""

from __future__ import annotations

import os
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the generated test models and store fixtures


@dataclass
class Figure:
    name: str
    goal: str
    measured: str
    ok: bool | None = None  # None: no goal to meet, or not measurable here
    note: str = ""
    value: float | None = None


@dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[list]


@dataclass
class Result:
    name: str
    command: str
    figures: list[Figure] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    raw: dict = field(default_factory=dict)
    date: str = ""  # when it ran (UTC): a page may combine runs of different benchmarks (--only)

    @classmethod
    def from_json(cls, data: dict) -> Result:
        return cls(
            data["name"],
            data["command"],
            [Figure(**f) for f in data["figures"]],
            [Table(**t) for t in data["tables"]],
            data.get("raw", {}),
            data.get("date", ""),
        )


def thread_cpu_s(native_id: int) -> float:
    """User + system CPU seconds of one thread of this process (Linux)."""
    with open(f"/proc/self/task/{native_id}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def percentile(values, q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def median_ratio(pairs: list[tuple[float, float]]) -> float:
    """Median over rounds of a/b, each pair measured side by side (drift cancels within a round)."""
    return statistics.median(a / b for a, b in pairs)


def median_interval(ratios: list[float], confidence: float = 0.9, resamples: int = 4000) -> tuple[float, float]:
    """A bootstrap interval of the median of per-round ratios: how far the median itself may be off.

    Says whether rounds were enough to resolve a few per cent on a machine whose speed drifts.
    """
    import numpy as np

    if len(ratios) < 3:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(12345)  # the same rounds always give the same interval
    values = np.asarray(ratios, dtype=float)
    medians = np.median(rng.choice(values, size=(resamples, len(values)), replace=True), axis=1)
    tail = (1 - confidence) / 2 * 100
    return float(np.percentile(medians, tail)), float(np.percentile(medians, 100 - tail))
