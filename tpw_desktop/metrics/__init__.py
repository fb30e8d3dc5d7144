"""Pure functions for every number tpw-desktop shows: no I/O, no clocks, no Qt."""
from .efficiency import IdleBaseline, Latency, PhaseFigures, idle_power_w, latency, mean_sd, phase_figures
from .energy import (
    METHOD_RANK,
    Method,
    WindowEnergy,
    combine,
    concat,
    counter_delta_uj,
    counter_window_energy,
    integrate_power_j,
    sampled_window_energy,
)
from .phases import Phase, Span, merge, split_call
from .rates import rate, spread_tokens, trailing_sum

__all__ = [
    "METHOD_RANK",
    "IdleBaseline",
    "Latency",
    "Method",
    "Phase",
    "PhaseFigures",
    "Span",
    "WindowEnergy",
    "combine",
    "concat",
    "counter_delta_uj",
    "counter_window_energy",
    "idle_power_w",
    "integrate_power_j",
    "latency",
    "mean_sd",
    "merge",
    "phase_figures",
    "rate",
    "sampled_window_energy",
    "split_call",
    "spread_tokens",
    "trailing_sum",
]
