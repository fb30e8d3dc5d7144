"""The one small protocol every power source implements.

A source measures one thing (a GPU's board, a CPU package, an estimate of
the CPU) and says how: ``counter`` (an energy counter we difference),
``sampled`` (instantaneous power we integrate), ``estimated`` (a model, not a
measurement) or ``replayed`` (a recorded trace). That label travels with
every figure to the screen, the database and exports.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from ..metrics import Method
from ..record.meta import SourceFacts


class _NotAvailable:
    """Sentinel for a metric the hardware doesn't report (nvitop's ``NA``)."""

    _instance = None

    def __new__(cls):
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "N/A"

    def __bool__(self) -> bool:
        return False


NA: Any = _NotAvailable()


class SourceUnavailable(Exception):
    """This source can't be used on this machine; the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class PowerReading:
    """One read of a source, on the engine's clock (``time.monotonic_ns``).

    ``power_w`` is NaN when the read failed or the source has no power
    figure; ``counter_uj`` is the raw energy counter (it may wrap, see the
    source's ``counter_wrap_uj``), or None when the source has none.
    """

    t_ns: int
    power_w: float
    counter_uj: int | None = None


@runtime_checkable
class PowerSource(Protocol):
    name: str  # stable id, also what --power takes: "nvml:0", "rapl:package-0", "estimate"
    method: Method
    measures: str  # what the figure covers, for a human: "GPU 0 NVIDIA H100 (board)"
    counter_wrap_uj: int | None  # where the counter wraps to zero; None if it doesn't
    # Optional: ``max_rate_hz``, the fastest rate at which reading it tells anything new;
    # ``resolution_s``, its known resolution (else measured from the data);
    # ``still_counter_means_zero``, for a counter of events that didn't move because none happened.

    def read(self) -> PowerReading: ...

    def info(self) -> dict[str, Any]:
        """Facts a reader of a result needs (model, driver, limits...); N/A left out."""
        ...

    def close(self) -> None: ...


def source_facts(source: PowerSource) -> SourceFacts:
    """What a result's reader needs to know of a source: its name, method, what it measures, its device."""
    return SourceFacts.of(source.name, source.method, source.measures, source.info())
