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
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

from ..errors import TpwError
from ..metrics import weakest_method
from ..urls import http_url
from .base import PowerReading, SourceUnavailable

ENERGY = (("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", 1e3), ("tpw_energy_joules_total", 1e6))  # metric, µJ per unit
POWER = "DCGM_FI_DEV_POWER_USAGE"
POLL_S = 1.0  # the sampler may ask 50 times a second; the server is asked at most this often


class PrometheusApi:
    """The few HTTP API calls tpw needs, each failure one TpwError naming the server."""

    def __init__(self, url: str, timeout_s: float = 5.0):
        http_url(url, "Prometheus", "http://127.0.0.1:9090")
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s

    def _get(self, path: str, params: dict | None = None) -> dict:
        url = f"{self.url}{path}" + ("?" + urllib.parse.urlencode(params) if params else "")
        try:
            with urllib.request.urlopen(url, timeout=self.timeout_s) as response:
                body = json.load(response)
        except urllib.error.HTTPError as exc:
            raise TpwError(f"Prometheus at {self.url}: HTTP {exc.code} for {path}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise TpwError(f"Prometheus at {self.url}: {reason}") from None
        except ValueError:
            raise TpwError(f"Prometheus at {self.url}: {path} did not answer JSON (is this Prometheus?)") from None
        if body.get("status") != "success":
            raise TpwError(f"Prometheus at {self.url}: {body.get('error', 'query failed')}")
        return body["data"]

    def instant(self, expr: str) -> list[tuple[dict, float, float]]:
        """(labels, sample time, value) of each series of ``expr`` now."""
        data = self._get("/api/v1/query", {"query": expr})
        return [(s["metric"], float(s["value"][0]), float(s["value"][1])) for s in data["result"]]

    def series(self, metric: str, window_s: float) -> list[tuple[dict, list[tuple[float, float]]]]:
        """Every series of ``metric`` with its raw samples over the last ``window_s``."""
        data = self._get("/api/v1/query", {"query": f"{{__name__={json.dumps(metric)}}}[{int(window_s)}s]"})
        return [(s["metric"], [(float(t), float(v)) for t, v in s["values"]]) for s in data["result"]]

    def targets(self) -> list[dict]:
        return self._get("/api/v1/targets", {"state": "active"})["activeTargets"]


def node_of(labels: dict) -> str:
    """A series' node: its ``node`` label, else the host of its target."""
    return labels.get("node") or labels.get("instance", "?").rsplit(":", 1)[0]


def duration_s(text: str | None) -> float | None:
    """A Prometheus duration ("15s", "1m", "500ms") in seconds; None if it isn't one."""
    if not text:
        return None
    units = {"ms": 1e-3, "s": 1, "m": 60, "h": 3600}
    for unit in ("ms", "s", "m", "h"):
        if text.endswith(unit) and text[: -len(unit)].replace(".", "", 1).isdigit():
            return float(text[: -len(unit)]) * units[unit]
    return None


def _series_key(labels: dict) -> str:
    return json.dumps(sorted(labels.items()))


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
        raise TpwError(f"Prometheus at {self.api.url} holds no GPU energy ({ENERGY[0][0]}, {ENERGY[1][0]}) "
                       f"or power ({POWER}): is dcgm-exporter or tpw exporter scraped?")

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
            values = {_series_key(labels): value for labels, _, value in self.api.instant(self.metric)}
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
        return {"prometheus": self.api.url, "metric": self.metric, "nodes": self.nodes,
                "scrape_interval_s": self.resolution_s}

    def close(self) -> None:
        pass
