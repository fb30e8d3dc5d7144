"""Prometheus metrics of what tpw measures: energy per power source, tokens per model and phase.

Counters are monotonic for the exporter's life, across runs, so any window
of ``rate(tpw_tokens_total) / rate(tpw_energy_joules_total)`` is tokens per
joule (the recording rules in ``packaging/prometheus`` do it). Energy is
the sampler's own window energy (a counter source differenced, the others
integrated), advanced source by source up to each one's newest reading at
every scrape. Time whose energy is unknown (a source that stopped
answering) is never counted as zero joules: it goes to
``tpw_energy_unknown_seconds_total`` instead.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Info
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from .. import __version__
from ..run.events import PhaseEnded, RepetitionDone

DEFAULT_PORT = 9464
DEFAULT_BIND = "127.0.0.1"  # another address is an explicit choice (--bind), never a default


class _EnergyCollector(Collector):
    """Energy and power per source, read from the sampler at scrape time."""

    def __init__(self, sampler, clock_ns: Callable[[], int]):
        self.sampler = sampler
        self.names = [(s.name, s.method) for s in sampler.sources]
        self.start_ns = clock_ns()
        self.edge_ns = [self.start_ns] * len(self.names)  # energy is counted up to here, per source
        self.joules = [0.0] * len(self.names)
        self.unknown_s = [0.0] * len(self.names)
        self._lock = threading.Lock()  # two scrapes at once must not count a window twice

    def advance(self) -> None:
        with self._lock:
            for i in range(len(self.names)):
                end = self.sampler.last_valid_ns(i)
                if end is None or end <= self.edge_ns[i]:
                    continue
                window = self.sampler.source_energy(i, self.edge_ns[i], end)
                if window.known:
                    self.joules[i] += window.joules
                elif window.stalled:
                    continue  # a periodic counter that hasn't moved yet: the next scrape's window covers it
                else:
                    self.unknown_s[i] += window.seconds
                self.edge_ns[i] = end

    def collect(self):
        self.advance()
        energy = CounterMetricFamily(
            "tpw_energy_joules",
            "Energy measured by each power source since the exporter "
            "started (method: counter, sampled, estimated or replayed)",
            labels=["source", "method"],
        )
        unknown = CounterMetricFamily(
            "tpw_energy_unknown_seconds",
            "Time whose energy is unknown because the source stopped answering (never counted as zero joules)",
            labels=["source"],
        )
        power = GaugeMetricFamily("tpw_power_watts", "Each power source's newest reading", labels=["source", "method"])
        for i, (name, method) in enumerate(self.names):
            energy.add_metric([name, method], self.joules[i])
            unknown.add_metric([name], self.unknown_s[i])
            latest = self.sampler.snapshot(i, last=1)["power_w"]
            if len(latest) and latest[-1] == latest[-1]:  # NaN: a failed read, no gauge value
                power.add_metric([name, method], float(latest[-1]))
        yield energy
        yield unknown
        yield power


class MetricsExporter:
    """The metrics of one sampler and of the runs measured with it; ``listener`` takes the runs' events."""

    def __init__(
        self,
        sampler,
        *,
        price_per_kwh: float | None = None,
        currency: str = "",
        clock_ns: Callable[[], int] = time.monotonic_ns,
    ):
        self.registry = CollectorRegistry()
        self.energy = _EnergyCollector(sampler, clock_ns)
        self.registry.register(self.energy)
        self.tokens = Counter(
            "tpw_tokens",
            "Tokens processed (prompt: pp, generated: tg), warm-ups included, as the energy counters include them",
            ["model", "phase"],
            registry=self.registry,
        )
        self.repetitions = Counter(
            "tpw_repetitions", "Measured repetitions finished", ["model", "test"], registry=self.registry
        )
        self.model_info = Info("tpw_model", "The model being measured", registry=self.registry)
        Info("tpw_exporter", "tpw-desktop", registry=self.registry).info({"version": __version__})
        self.price = Gauge(
            "tpw_electricity_price_per_kwh",
            "The user's electricity price (for cost per 1M tokens)",
            ["currency"],
            registry=self.registry,
        )
        if price_per_kwh is not None:
            self.price.labels(currency or "").set(price_per_kwh)
        self.model = "none"
        self._server = None

    def set_model(self, name: str, quantization: str, backend: str) -> None:
        self.model = name
        self.model_info.info({"model": name, "quantization": quantization, "backend": backend})

    def listener(self, event) -> None:
        if isinstance(event, PhaseEnded):
            if event.kind == "server":  # a server level's window: its generated tokens
                self.tokens.labels(self.model, "tg").inc(event.tokens)
            elif event.phase in ("pp", "tg"):  # a call's total is these two
                self.tokens.labels(self.model, event.phase).inc(event.tokens)
        elif isinstance(event, RepetitionDone):
            self.repetitions.labels(self.model, event.test).inc()

    def serve(self, port: int = DEFAULT_PORT, bind: str = DEFAULT_BIND) -> int:
        """Serve /metrics on a thread; returns the port (0 picks a free one)."""
        from prometheus_client import start_http_server

        self._server, _thread = start_http_server(port, addr=bind, registry=self.registry)
        return self._server.server_address[1]

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
