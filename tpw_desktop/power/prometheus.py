"""A fleet's GPU energy as a power source, read from a Prometheus server (``--power prometheus:URL``).

With it, ``tpw bench --endpoint`` measures a server on another machine
against that machine's GPUs: the energy is dcgm-exporter's counter
(``DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION``, mJ, summed over every GPU:
method ``counter``) or tpw's own exporter's (``tpw_energy_joules_total``,
with its method), else dcgm-exporter's power gauge (``sampled``). Its
resolution is the scrape interval.

Prometheus is a peer: it is asked on a thread of this source's own, once
a second with its own timeout, so a stalled server never holds the
sampler (and the other sources) up; ``read`` hands back its newest answer.
A GPU that stops reporting (its series gone, its newest sample older than
two scrapes, or not a usable number) makes the reads fail, naming its
node, so a window over the gap is unknown rather than missing that GPU's
joules; when it reports again, the counters' difference covers the gap.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from ..errors import TpwError
from ..metrics import METHOD_RANK, counter_increase, weakest_method
from ..peers.prometheus_server import PrometheusApi, Series
from .base import PowerReading, SourceUnavailable

ENERGY = (("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", 1e3), ("tpw_energy_joules_total", 1e6))  # metric, µJ per unit
POWER = "DCGM_FI_DEV_POWER_USAGE"
POLL_S = 1.0  # the sampler may ask 50 times a second; the server is asked this often, on its own thread
HELD_S = 3 * POLL_S  # an answer older than this is not handed on: the server has stalled
STALE_SCRAPES = 2.0  # a series whose newest sample is older than this many scrape intervals has stopped


def stale_nodes(series: list[Series], now_s: float, interval_s: float | None) -> list[str]:
    """The nodes with a series that has no sample, or whose newest is older than ``STALE_SCRAPES`` scrapes."""
    limit = STALE_SCRAPES * (interval_s or POLL_S)
    return sorted({s.node for s in series if not s.samples or now_s - s.samples[-1].t_s > limit})


class PrometheusSource:
    counter_wrap_uj = None
    max_rate_hz = 1 / POLL_S

    def __init__(self, url: str, clock_ns: Callable[[], int] = time.monotonic_ns, api: PrometheusApi | None = None):
        try:
            self.api = api or PrometheusApi(url)
            self.clock_ns = clock_ns
            self.name = f"prometheus:{self.api.url}"
            self.metric, self.scale = self._pick()
            first = self.api.instant(self.metric).series
            self.resolution_s = self._scrape_interval_s()
        except TpwError as exc:
            raise SourceUnavailable(str(exc)) from None
        self._values: dict[str, float] = {}  # each GPU series' last value
        self._series: dict[str, Series] = {}  # the series seen at the last answer
        self._total_uj = 0.0
        self.nodes = sorted({s.node for s in first})
        labels = {s.labels.get("method", "counter") for s in first} if self.scale else {"sampled"}
        unknown = sorted(labels - set(METHOD_RANK))
        if unknown:  # a method tpw doesn't know can't be ranked: the source says so rather than guess
            raise SourceUnavailable(
                f"Prometheus at {self.api.url}: {self.metric} has a method label tpw doesn't "
                f"know ({', '.join(unknown)})"
            )
        self.method = weakest_method(labels)
        self.measures = f"{len(first)} GPU series on {len(self.nodes)} node(s) via {self.metric}"
        self._latest: PowerReading | None = None  # stamped when it was answered
        self._failure: str | None = "no answer from Prometheus yet"
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._asked = threading.Event()
        self._thread = threading.Thread(target=self._poll, name="tpw-prometheus-source", daemon=True)
        self._thread.start()
        self._asked.wait(self.api.timeout_s + 1)  # opened means answered once (or failed once, said by read)

    def _pick(self) -> tuple[str, float | None]:
        for metric, scale in (*ENERGY, (POWER, None)):
            answer = self.api.instant(metric)
            if answer.series and not any(s.samples for s in answer.series):
                raise TpwError(f"Prometheus at {self.api.url}: unusable samples ({'; '.join(answer.dropped[:3])})")
            if answer.series:
                return metric, scale
        raise TpwError(
            f"Prometheus at {self.api.url} holds no GPU energy ({ENERGY[0][0]}, {ENERGY[1][0]}) "
            f"or power ({POWER}): is dcgm-exporter or tpw exporter scraped?"
        )

    def _scrape_interval_s(self) -> float | None:
        values = [t.scrape_interval_s for t in self.api.targets()]
        return max((v for v in values if v), default=None)

    def _poll(self) -> None:
        while not self._closed.is_set():
            try:
                reading, failure = self._ask(), None
            except TpwError as exc:
                reading, failure = None, str(exc)
            with self._lock:
                self._failure = failure
                if reading is not None:
                    self._latest = reading
            self._asked.set()
            self._closed.wait(POLL_S)

    def _ask(self) -> PowerReading:
        """The fleet's energy so far (or its power) as of the newest scrapes.

        The counter is tpw's own: the sum of each GPU series' increase since it was first seen (a reset
        counts from zero), so a GPU appearing later adds only what it uses from then on.
        """
        answer = self.api.instant(self.metric)
        if answer.dropped:
            raise TpwError(f"Prometheus at {self.api.url}: unusable samples ({'; '.join(answer.dropped[:3])})")
        now = self.clock_ns()
        stale = stale_nodes(answer.series, self.api.now_s(), self.resolution_s)
        values = {s.key: s.samples[-1].value for s in answer.series if s.samples}
        gone = sorted({s.node for s in self._series.values() if s.key not in values})
        if stale or gone:  # its joules are missing from the sum: no figure until it reports again
            raise TpwError(f"node {', '.join(sorted(set(stale + gone)))} stopped reporting")
        self._series = {s.key: s for s in answer.series}
        if self.scale is None:
            reading = PowerReading(now, sum(values.values()))
        else:
            for key, value in values.items():
                before = self._values.get(key)
                if before is not None:
                    self._total_uj += counter_increase([before, value]) * self.scale
            reading = PowerReading(now, float("nan"), int(round(self._total_uj)))
        self._values = values
        return reading

    def read(self) -> PowerReading:
        """The newest answer, now (the server is asked on this source's own thread); OSError while failing.

        Between questions its last answer stands, a failure too; but not for longer than ``HELD_S``: a
        held counter would read as no power used while a stalled server says nothing.
        """
        with self._lock:
            failure, latest = self._failure, self._latest
        if failure:
            raise OSError(failure)
        now = self.clock_ns()
        if (now - latest.t_ns) / 1e9 > HELD_S:
            raise OSError(f"Prometheus at {self.api.url}: no answer for {(now - latest.t_ns) / 1e9:.0f} s")
        return PowerReading(now, latest.power_w, latest.counter_uj)

    def info(self) -> dict[str, Any]:
        return {
            "prometheus": self.api.url,
            "metric": self.metric,
            "nodes": ", ".join(self.nodes),
            "scrape_interval_s": self.resolution_s,
        }

    def close(self) -> None:
        self._closed.set()
        self._thread.join(self.api.timeout_s + 1)
        self.api.close()
