"""A fleet through Prometheus: per node, GPU energy and LLM tokens, and tokens per joule.

Energy comes from NVIDIA's dcgm-exporter (``DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION``,
a counter in mJ: method ``counter``; else ``DCGM_FI_DEV_POWER_USAGE`` in W,
integrated: ``sampled``) or tpw's own exporter (``tpw_energy_joules_total``,
with its method label). Tokens come from llama-server
(``llamacpp:prompt_tokens_total``, ``llamacpp:tokens_predicted_total``), vLLM
(``vllm:prompt_tokens_total``, ``vllm:generation_tokens_total``) or tpw.

Rates are counter differences over the raw samples Prometheus holds for
the window (no extrapolation), so their resolution is the scrape interval;
a window shorter than four scrapes is low confidence. A node is its
``node`` label, else the host of its targets. A node with a target that is
down, or a series whose newest sample is older than two scrapes (its target
may still say ``up``), has stopped; one whose samples aren't usable numbers
(``NaN``, a negative value) or whose method tpw doesn't know has no figure:
either way the reason is said and the node is left out of the fleet's sums,
never counted as zero. ``FleetFigures.top`` keeps a 10,000-series fleet's
table to its busiest nodes, saying how many more there are.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..metrics import METHOD_RANK, counter_increase, cumulative_trapezoid_j, weakest_method
from ..peers.prometheus_server import Answer, PrometheusApi, Sample, Series
from ..power.prometheus import STALE_SCRAPES

ENERGY_COUNTERS = {  # metric -> joules per unit
    "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION": 1e-3,
    "tpw_energy_joules_total": 1.0,
}
POWER_GAUGES = ("DCGM_FI_DEV_POWER_USAGE",)
TOKEN_COUNTERS = {  # metric -> engine
    "llamacpp:prompt_tokens_total": "llama.cpp",
    "llamacpp:tokens_predicted_total": "llama.cpp",
    "vllm:prompt_tokens_total": "vLLM",
    "vllm:generation_tokens_total": "vLLM",
    "tpw_tokens_total": "tpw",
}
MIN_SCRAPES = 4  # fewer samples than this in a window: low confidence


def counter_rate(samples: tuple[Sample, ...]) -> tuple[float, float] | None:
    """(increase, seconds) between the first and last sample; a reset counts from zero, as Prometheus does."""
    if len(samples) < 2:
        return None
    return counter_increase([x.value for x in samples]), samples[-1].t_s - samples[0].t_s


def integrated_power(samples: tuple[Sample, ...]) -> tuple[float, float] | None:
    """(joules, seconds) of a power gauge over its samples, by the trapezoid rule (``metrics``' integrator)."""
    if len(samples) < 2:
        return None
    t = np.array([x.t_s for x in samples])
    return float(cumulative_trapezoid_j(t, np.array([x.value for x in samples]))[-1]), float(t[-1] - t[0])


@dataclass(frozen=True)
class NodeFigures:
    node: str
    tokens_per_s: float | None
    watts: float | None
    tokens_per_j: float | None
    method: str  # counter, sampled, estimated, replayed; "unknown" without energy
    engines: tuple[str, ...]
    reporting: bool
    confident: bool
    resolution_s: float | None  # the scrape interval
    unknown: dict[str, str] = field(default_factory=dict)

    @property
    def method_text(self) -> str:
        """The method as shown: flagged when a figure stands on fewer than four scrapes."""
        flagged = self.method != "unknown" and not self.confident
        return self.method + (" (low confidence)" if flagged else "")


@dataclass(frozen=True)
class FleetFigures:
    nodes: list[NodeFigures]
    fleet: NodeFigures  # the nodes that report, summed; its name says how many
    window_s: float

    def top(self, limit: int) -> tuple[list[NodeFigures], int]:
        """The ``limit`` busiest nodes (most tokens/s; those not reporting after), and how many are left out."""
        ranked = sorted(self.nodes, key=lambda n: (not n.reporting, -(n.tokens_per_s or 0.0), n.node))
        return ranked[:limit], max(0, len(ranked) - limit)


class _Nodes:
    """What the window says of each node: energy and token rates, and why a node has no figure."""

    def __init__(self):
        self.energy: dict[str, list[tuple[float, float, str]]] = {}  # node -> (joules, seconds, method)
        self.tokens: dict[str, list[tuple[float, float, str]]] = {}  # node -> (tokens, seconds, engine)
        self.stopped: dict[str, str] = {}  # node -> why it counts as stopped
        self.unusable: dict[str, str] = {}  # node -> why its figures are unknown

    def take(self, answer: Answer, now_s: float, interval: dict[str, float | None]) -> list[Series]:
        """The answer's live series; stale ones mark their node stopped, unusable samples their node unknown."""
        for why in answer.dropped:
            node, _, what = why.partition(": ")
            self.unusable.setdefault(node, f"unusable samples ({what})")
        live = []
        for s in answer.series:
            limit = STALE_SCRAPES * (interval.get(s.node) or 1.0)
            if s.samples and now_s - s.samples[-1].t_s > limit:
                self.stopped.setdefault(s.node, f"its newest sample is {now_s - s.samples[-1].t_s:.0f} s old")
                continue
            live.append(s)
        return live


def fleet_figures(api: PrometheusApi, window_s: float = 60.0) -> FleetFigures:
    """Each node's tok/s, W and tok/J over the last ``window_s``, and the fleet's over the nodes that report."""
    interval: dict[str, float | None] = {}
    nodes = _Nodes()
    for t in api.targets():
        interval[t.node] = max(interval.get(t.node) or 0.0, t.scrape_interval_s or 0.0) or None
        if t.health != "up":
            error = f": {t.last_error}" if t.last_error else ""
            nodes.stopped[t.node] = f"target {t.labels.get('instance', '?')} is {t.health}{error}"
    now_s = api.now_s()
    for metric, scale in ENERGY_COUNTERS.items():
        for s in nodes.take(api.series(metric, window_s), now_s, interval):
            method = s.labels.get("method", "counter")
            if method not in METHOD_RANK:
                nodes.unusable.setdefault(s.node, f"{metric} has a method tpw doesn't know ({method})")
            elif (rate := counter_rate(s.samples)) is not None:
                nodes.energy.setdefault(s.node, []).append((rate[0] * scale, rate[1], method))
    for metric in POWER_GAUGES:  # only for nodes without an energy counter
        for s in nodes.take(api.series(metric, window_s), now_s, interval):
            if s.node in nodes.energy and any(m != "sampled" for _, _, m in nodes.energy[s.node]):
                continue
            if (integral := integrated_power(s.samples)) is not None:
                nodes.energy.setdefault(s.node, []).append((integral[0], integral[1], "sampled"))
    for metric, engine in TOKEN_COUNTERS.items():
        for s in nodes.take(api.series(metric, window_s), now_s, interval):
            if (rate := counter_rate(s.samples)) is not None:
                nodes.tokens.setdefault(s.node, []).append((rate[0], rate[1], engine))
    names = sorted(set(nodes.energy) | set(nodes.tokens) | set(nodes.stopped) | set(nodes.unusable))
    figures = [_node(n, nodes, interval.get(n)) for n in names]
    return FleetFigures(figures, _fleet(figures), window_s)


def _node(name: str, nodes: _Nodes, resolution_s: float | None) -> NodeFigures:
    energy, tokens = nodes.energy.get(name, []), nodes.tokens.get(name, [])
    engines = tuple(sorted({e for _, _, e in tokens}))
    if name in nodes.stopped or name in nodes.unusable:
        stopped = name in nodes.stopped
        reason = f"stopped reporting ({nodes.stopped[name]})" if stopped else nodes.unusable[name]
        return NodeFigures(
            name,
            None,
            None,
            None,
            "unknown",
            engines,
            not stopped,
            False,
            resolution_s,
            dict.fromkeys(("tokens_per_j", "watts", "tokens_per_s"), reason),
        )
    unknown = {}
    watts = sum(j / s for j, s, _ in energy if s > 0) if energy else None
    speed = sum(n / s for n, s, _ in tokens if s > 0) if tokens else None
    if watts is None:
        unknown["watts"] = "no GPU energy or power metric for this node (dcgm-exporter or tpw exporter)"
    if speed is None:
        unknown["tokens_per_s"] = "no token counter for this node (llama-server --metrics, vLLM or tpw)"
    tok_j = speed / watts if speed is not None and watts else None
    if tok_j is None:
        unknown["tokens_per_j"] = unknown.get("watts") or unknown.get("tokens_per_s") or "no energy in the window"
    method = weakest_method(m for _, _, m in energy) if energy else "unknown"
    covered = min([s for _, s, _ in energy + tokens], default=0.0)
    confident = resolution_s is not None and covered >= MIN_SCRAPES * resolution_s - 1e-9
    return NodeFigures(name, speed, watts, tok_j, method, engines, True, confident, resolution_s, unknown)


def _fleet(nodes: list[NodeFigures]) -> NodeFigures:
    reporting = [n for n in nodes if n.reporting]
    measured = [n for n in reporting if n.watts is not None and n.tokens_per_s is not None]
    label = f"fleet ({len(measured)} of {len(nodes)} nodes)"
    if not measured:
        why = "no node reports both tokens and energy"
        return NodeFigures(label, None, None, None, "unknown", (), bool(reporting), False, None, {"tokens_per_j": why})
    speed = math.fsum(n.tokens_per_s for n in measured)
    watts = math.fsum(n.watts for n in measured)
    return NodeFigures(
        label,
        speed,
        watts,
        speed / watts if watts else None,
        weakest_method(n.method for n in measured),
        tuple(sorted({e for n in measured for e in n.engines})),
        True,
        all(n.confident for n in measured),
        max((n.resolution_s or 0.0 for n in measured), default=0.0) or None,
    )
