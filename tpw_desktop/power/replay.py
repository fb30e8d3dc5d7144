"""Play back a recorded power trace, for tests, demos and machines without a sensor.

A trace is CSV (``t_s,power_w[,energy_j]``, ``#`` comments allowed) or JSON
(a list of ``{"t_s", "power_w", "energy_j"?}`` objects, or ``{"samples": [...]}``).
It plays in real time (optionally faster) against the engine's clock, or
all at once through ``iter_readings``. Every figure it yields is labelled
``replayed``, even when the trace was recorded from a counter.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import TpwError
from ..metrics import cumulative_trapezoid_j, piecewise_linear_energy_j
from .base import PowerReading


@dataclass(frozen=True)
class PowerTrace:
    t_s: np.ndarray  # starts at 0, strictly increasing
    power_w: np.ndarray
    energy_j: np.ndarray | None  # cumulative, starts at 0
    origin: str = "trace"

    @property
    def duration_s(self) -> float:
        return float(self.t_s[-1])

    @classmethod
    def from_rows(cls, rows: list[tuple[str, dict[str, Any]]], origin: str) -> PowerTrace:
        """Validate every sample, naming where a bad one is: ``rows`` are (location, sample) pairs."""
        if len(rows) < 2:
            raise TpwError(f"{origin}: a power trace needs at least two samples")
        has_energy = all(r.get("energy_j") not in (None, "") for _, r in rows)
        keys = ("t_s", "power_w", "energy_j") if has_energy else ("t_s", "power_w")
        table = np.array([[_number(origin, where, r, key) for key in keys] for where, r in rows])
        t, p = table[:, 0], table[:, 1]
        e = table[:, 2] if has_energy else None
        for rule, what in (
            (np.diff(t) <= 0, "t_s must be strictly increasing"),
            (np.diff(e) < 0 if e is not None else None, "energy_j went backwards"),
        ):
            if rule is not None and rule.any():
                where = rows[int(np.argmax(rule)) + 1][0]
                raise TpwError(f"{origin}, {where}: {what}")
        return cls(t - t[0], p, None if e is None else e - e[0], origin)

    @classmethod
    def load(cls, path: str | Path) -> PowerTrace:
        path = Path(path)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise TpwError(f"{path}: cannot read the power trace ({exc.strerror})") from None
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = data[: exc.start].count(b"\n") + 1
            raise TpwError(
                f"{path}, line {line}: not UTF-8 text (byte {data[exc.start]:#04x}): is this a power trace?"
            ) from None
        if path.suffix.lower() == ".json":
            try:
                doc = json.loads(text)
            except json.JSONDecodeError as exc:
                raise TpwError(f"{path}, line {exc.lineno}: not valid JSON ({exc.msg})") from None
            samples = doc["samples"] if isinstance(doc, dict) and "samples" in doc else doc
            if not isinstance(samples, list) or not all(isinstance(r, dict) for r in samples):
                raise TpwError(f'{path}: expected a list of samples like {{"t_s": 0, "power_w": 50}}')
            rows = [(f"sample {i + 1}", r) for i, r in enumerate(samples)]
        else:
            numbered = [
                (n, line)
                for n, line in enumerate(text.splitlines(), 1)
                if line.strip() and not line.lstrip().startswith("#")
            ]
            if not numbered:
                raise TpwError(f"{path}: no samples (expected a header like t_s,power_w and then rows)")
            header = next(csv.reader([numbered[0][1]]))
            rows = [
                (f"line {n}", dict(zip(header, values)))
                for n, values in ((n, next(csv.reader([line]))) for n, line in numbered[1:])
            ]
        return cls.from_rows(rows, str(path))

    def energy_at(self, t_s: float) -> float:
        """Cumulative joules at ``t_s``: the trace's recorded counter (interpolated), or the exact integral of
        its power, linear between its points, so replayed energy equals the replayed watts at any window."""
        if self.energy_j is not None:
            return float(np.interp(t_s, self.t_s, self.energy_j))
        return piecewise_linear_energy_j(self.t_s, self.power_w, self._cumulative_j, t_s)

    @cached_property
    def _cumulative_j(self) -> np.ndarray:
        """The integral of power up to each point (computed once: read runs at 50 Hz)."""
        return cumulative_trapezoid_j(self.t_s, self.power_w)


def _number(origin: str, where: str, row: dict[str, Any], key: str) -> float:
    """One field of a sample: present, numeric, finite, and (but for time) not negative."""
    raw = row.get(key)
    if raw in (None, ""):
        raise TpwError(f"{origin}, {where}: no {key} (each sample needs numeric t_s and power_w)")
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise TpwError(f"{origin}, {where}: {key} is not a number ({raw!r})") from None
    if not math.isfinite(value):
        raise TpwError(f"{origin}, {where}: {key} is {raw} (must be a finite number)")
    if key != "t_s" and value < 0:
        raise TpwError(f"{origin}, {where}: {key} is negative ({value:g})")
    return value


class ReplaySource:
    method = "replayed"
    counter_wrap_uj = None

    def __init__(
        self,
        trace: PowerTrace,
        clock_ns: Callable[[], int],
        *,
        speed: float = 1.0,
        loop: bool = True,
    ):
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.trace = trace
        self._clock_ns = clock_ns
        self.speed = speed
        self.loop = loop
        self._t0_ns = clock_ns()
        self._total_j = trace.energy_at(trace.duration_s)
        self.name = f"replay:{Path(trace.origin).name}"
        self.measures = f"recorded trace {Path(trace.origin).name}"

    def _position(self, elapsed_s: float) -> tuple[int, float]:
        duration = self.trace.duration_s
        if not self.loop:
            return 0, min(elapsed_s, duration)
        loops = math.floor(elapsed_s / duration)
        return loops, elapsed_s - loops * duration

    def read(self) -> PowerReading:
        t_ns = self._clock_ns()
        loops, pos = self._position((t_ns - self._t0_ns) / 1e9 * self.speed)
        power = float(np.interp(pos, self.trace.t_s, self.trace.power_w))
        energy_j = loops * self._total_j + self.trace.energy_at(pos)
        # Sped up, the trace's joules arrive faster than in the recording; scale
        # them so joules per wall-clock second still equal the replayed watts.
        return PowerReading(t_ns, power, round(energy_j / self.speed * 1e6))

    def iter_readings(self, t0_ns: int = 0) -> Iterator[PowerReading]:
        """Every sample of the trace at once, timestamped from ``t0_ns``."""
        for t_s, power in zip(self.trace.t_s, self.trace.power_w):
            yield PowerReading(t0_ns + round(t_s * 1e9), float(power), round(self.trace.energy_at(t_s) * 1e6))

    def info(self) -> dict[str, Any]:
        return {
            "trace": self.trace.origin,
            "duration_s": self.trace.duration_s,
            "speed": self.speed,
            "loop": self.loop,
            "trace_has_energy": self.trace.energy_j is not None,
        }

    def close(self) -> None:
        pass
