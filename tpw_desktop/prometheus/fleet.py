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
``node`` label, else the host of its targets; a node with a target that
is down has no figures (with the reason) and is left out of the fleet's
sums, never counted as zero.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..peers.prometheus_server import PrometheusApi, duration_s, node_of

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


def counter_rate(samples: list[tuple[float, float]]) -> tuple[float, float] | None:
    """(increase, seconds) between the first and last sample; a reset counts from zero, as Prometheus does."""
    if len(samples) < 2:
        return None
    increase = sum(b - a if b >= a else b for (_, a), (_, b) in zip(samples, samples[1:]))
    return increase, samples[-1][0] - samples[0][0]


def integrated_power(samples: list[tuple[float, float]]) -> tuple[float, float] | None:
    """(joules, seconds) of a power gauge by the trapezoid rule over its samples."""
    if len(samples) < 2:
        return None
    joules = sum((t1 - t0) * (p0 + p1) / 2 for (t0, p0), (t1, p1) in zip(samples, samples[1:]))
    return joules, samples[-1][0] - samples[0][0]


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


@dataclass(frozen=True)
class FleetFigures:
    nodes: list[NodeFigures]
    fleet: NodeFigures  # the nodes that report, summed; its name says how many
    window_s: float


def _rank(method: str) -> int:
    return (
        ("estimated", "replayed", "sampled", "counter").index(method)
        if method in ("estimated", "replayed", "sampled", "counter")
        else -1
    )


def fleet_figures(api: PrometheusApi, window_s: float = 60.0) -> FleetFigures:
    """Each node's tok/s, W and tok/J over the last ``window_s``, and the fleet's over the nodes that report."""
    targets = api.targets()
    interval = {}
    down = {}
    for t in targets:
        node = node_of(t["labels"])
        seconds = duration_s(t.get("scrapeInterval"))
        interval[node] = max(interval.get(node, 0.0), seconds or 0.0) or None
        if t.get("health") != "up":
            down[node] = f"target {t['labels'].get('instance')} is {t.get('health')}" + (
                f": {t['lastError']}" if t.get("lastError") else ""
            )
    energy: dict[str, list[tuple[float, float, str]]] = {}  # node -> (joules, seconds, method)
    for metric, scale in ENERGY_COUNTERS.items():
        for labels, samples in api.series(metric, window_s):
            rate = counter_rate(samples)
            if rate is not None:
                method = labels.get("method", "counter")
                energy.setdefault(node_of(labels), []).append((rate[0] * scale, rate[1], method))
    for metric in POWER_GAUGES:  # only for nodes without an energy counter
        for labels, samples in api.series(metric, window_s):
            node = node_of(labels)
            if node in energy and any(m != "sampled" for _, _, m in energy[node]):
                continue
            integral = integrated_power(samples)
            if integral is not None:
                energy.setdefault(node, []).append((integral[0], integral[1], "sampled"))
    tokens: dict[str, list[tuple[float, float, str]]] = {}
    for metric, engine in TOKEN_COUNTERS.items():
        for labels, samples in api.series(metric, window_s):
            rate = counter_rate(samples)
            if rate is not None:
                tokens.setdefault(node_of(labels), []).append((rate[0], rate[1], engine))
    names = sorted(set(energy) | set(tokens) | set(down))
    nodes = [_node(n, energy.get(n, []), tokens.get(n, []), down.get(n), interval.get(n), window_s) for n in names]
    return FleetFigures(nodes, _fleet(nodes, window_s), window_s)


def _node(name: str, energy, tokens, down: str | None, resolution_s: float | None, window_s: float) -> NodeFigures:
    engines = tuple(sorted({e for _, _, e in tokens}))
    if down is not None:
        reason = f"stopped reporting ({down})"
        return NodeFigures(
            name,
            None,
            None,
            None,
            "unknown",
            engines,
            False,
            False,
            resolution_s,
            {"tokens_per_j": reason, "watts": reason, "tokens_per_s": reason},
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
    method = min((m for _, _, m in energy), key=_rank, default="unknown")
    covered = min([s for _, s, _ in energy + tokens], default=0.0)
    confident = resolution_s is not None and covered >= MIN_SCRAPES * resolution_s - 1e-9
    return NodeFigures(name, speed, watts, tok_j, method, engines, True, confident, resolution_s, unknown)


def _fleet(nodes: list[NodeFigures], window_s: float) -> NodeFigures:
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
        min((n.method for n in measured), key=_rank),
        tuple(sorted({e for n in measured for e in n.engines})),
        True,
        all(n.confident for n in measured),
        max((n.resolution_s or 0.0 for n in measured), default=0.0) or None,
    )
