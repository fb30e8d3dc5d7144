"""JSON that every parser accepts: NaN and infinity become null.

Python's json writes float NaN as a bare `NaN`, which is not JSON. A figure
that can't be computed (the peak power of a window too short to hold a
sample, a rate with nothing to divide by) is NaN in numpy, and null in JSON.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any


def clean(value: Any) -> Any:
    """The same structure with non-finite floats as None and numpy scalars as Python ones."""
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", None) == 0:
        value = value.item()  # numpy scalar
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def dumps(value: Any, **kwargs) -> str:
    return json.dumps(clean(value), allow_nan=False, default=str, **kwargs)


def dump(value: Any, out, **kwargs) -> None:
    json.dump(clean(value), out, allow_nan=False, default=str, **kwargs)
