"""Token and power rates on a fixed time grid, for live charts.

A prompt's tokens are processed over its whole prompt-processing span, so
they are spread over the bins that span covers in proportion to the
overlap; a generated token counts in the bin of its timestamp. Rolling
rates are ratios of trailing sums, never means of ratios.
"""

from __future__ import annotations

import numpy as np


def spread_tokens(counts: np.ndarray, t0_ns: int, t1_ns: int, n_tokens: float, origin_ns: int, bin_ns: int) -> None:
    """Add ``n_tokens`` processed uniformly over [t0, t1] to the bins of ``counts`` (in place)."""
    first = (t0_ns - origin_ns) // bin_ns
    if t1_ns <= t0_ns:
        counts[first] += n_tokens
        return
    last = (t1_ns - 1 - origin_ns) // bin_ns
    edges = origin_ns + np.arange(first, last + 2, dtype=np.int64) * bin_ns
    overlap = np.minimum(edges[1:], t1_ns) - np.maximum(edges[:-1], t0_ns)
    counts[first : last + 1] += n_tokens * overlap / (t1_ns - t0_ns)


def trailing_sum(values: np.ndarray, window: int) -> np.ndarray:
    """Sum of the last ``window`` values at each position (fewer at the start); NaN counts as 0."""
    c = np.concatenate(([0.0], np.cumsum(np.nan_to_num(values))))
    i = np.arange(1, len(values) + 1)
    return c[i] - c[np.maximum(i - window, 0)]


def rate(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """Elementwise ratio, NaN where the denominator isn't positive."""
    out = np.full(np.shape(numerator), np.nan)
    ok = denominator > 0
    np.divide(numerator, denominator, out=out, where=ok)
    return out
