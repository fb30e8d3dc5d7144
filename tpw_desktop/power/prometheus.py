"""A fleet's GPU energy as a power source, read from a Prometheus server (``--power prometheus:URL``).

With it, ``tpw bench --endpoint`` measures a server on another machine
against that machine's GPUs: the energy is dcgm-exporter's counter
(``DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION``, mJ, summed over every GPU:
method ``counter``) or tpw's own exporter's (``tpw_energy_joules_total``,
with its method), else dcgm-exporter's power gauge (``sampled``). Its
resolution is the scrape interval. A GPU that stops reporting makes the
reads fail, naming its node, so a window over the gap is unknown rather
than missing that GPU's joules; when it reports again, the counters'
difference covers the gap.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from ..errors import TpwError
from ..metrics import weakest_method
from ..peers.prometheus_server import PrometheusApi, duration_s, node_of, series_key
from .base import PowerReading, SourceUnavailable

ENERGY = (("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", 1e3), ("tpw_energy_joules_total", 1e6))  # metric, µJ per unit
POWER = "DCGM_FI_DEV_POWER_USAGE"
POLL_S = 1.0  # the sampler may ask 50 times a second; the server is asked at most this often


class PrometheusSource:
    counter_wrap_uj = None
    max_rate_hz = 1 / POLL_S

    def __init__(self, url: str, clock_ns: Callable[[], int] = time.monotonic_ns, api: PrometheusApi | None = None):
        try:
            self.api = api or PrometheusApi(url)
            self.clock_ns = clock_ns
            self.name = f"prometheus:{self.api.url}"
            self.metric, self.scale = self._pick()
        except TpwError as exc:
            raise SourceUnavailable(str(exc)) from None
        first = self.api.instant(self.metric)
        self._values: dict[str, float] = {}  # each GPU series' last value
        self._total_uj = 0.0
        self.nodes = sorted({node_of(labels) for labels, _, _ in first})
        methods = {labels.get("method", "counter") for labels, _, _ in first} if self.scale else {"sampled"}
        self.method = weakest_method(methods)
        self.measures = f"{len(first)} GPU series on {len(self.nodes)} node(s) via {self.metric}"
        self.resolution_s = self._scrape_interval_s()
        self._last: PowerReading | None = None
        self._failure: str | None = None
        self._asked = 0.0

    def _pick(self) -> tuple[str, float | None]:
        for metric, scale in ENERGY:
            if self.api.instant(metric):
                return metric, scale
        if self.api.instant(POWER):
            return POWER, None
        raise TpwError(
            f"Prometheus at {self.api.url} holds no GPU energy ({ENERGY[0][0]}, {ENERGY[1][0]}) "
            f"or power ({POWER}): is dcgm-exporter or tpw exporter scraped?"
        )

    def _scrape_interval_s(self) -> float | None:
        values = [duration_s(t.get("scrapeInterval")) for t in self.api.targets()]
        return max((v for v in values if v), default=None)

    def read(self) -> PowerReading:
        """The fleet's energy so far (or its power) as of the newest scrapes; the server asked once a second.

        The counter is tpw's own: the sum of each GPU series' increase since it was first seen (a reset
        counts from zero), so a GPU appearing later adds only what it uses from then on.
        """
        now = self.clock_ns()
        if self._last is not None and time.monotonic() - self._asked < POLL_S:
            if self._failure:  # between questions to the server, its last answer stands, a failure too
                raise OSError(self._failure)
            return PowerReading(now, self._last.power_w, self._last.counter_uj)
        self._asked = time.monotonic()
        try:
            values = {series_key(labels): value for labels, _, value in self.api.instant(self.metric)}
        except TpwError as exc:
            self._failure = str(exc)
            raise OSError(self._failure) from None
        gone = sorted({node_of(dict(json.loads(key))) for key in self._values.keys() - values.keys()})
        if gone:  # its joules are missing from the sum: no figure until it reports again
            self._failure = f"node {', '.join(gone)} stopped reporting"
            raise OSError(self._failure)
        self._failure = None
        if self.scale is None:
            reading = PowerReading(now, sum(values.values()))
        else:
            for key, value in values.items():
                before = self._values.get(key)
                if before is not None:
                    self._total_uj += (value - before if value >= before else value) * self.scale
            reading = PowerReading(now, float("nan"), int(round(self._total_uj)))
        self._values = values
        self._last = reading
        return reading

    def info(self) -> dict[str, Any]:
        return {
            "prometheus": self.api.url,
            "metric": self.metric,
            "nodes": self.nodes,
            "scrape_interval_s": self.resolution_s,
        }

    def close(self) -> None:
        pass
