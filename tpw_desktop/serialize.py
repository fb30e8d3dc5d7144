"""JSON that every parser accepts (NaN and infinity become null), and CSV a spreadsheet can't run.

Python's json writes float NaN as a bare `NaN`, which is not JSON. A figure
that can't be computed (the peak power of a window too short to hold a
sample, a rate with nothing to divide by) is NaN in numpy, and null in JSON.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
from pathlib import Path
from typing import Any


def clean(value: Any) -> Any:
    """The same structure with non-finite floats as None, numpy scalars as Python ones, records as dicts."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
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


# A cell starting with one of these runs as a formula in Excel, LibreOffice or Google Sheets (OWASP, CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: Any) -> Any:
    """A cell as a spreadsheet shows it and never runs it: text that would start a formula gets a leading
    apostrophe; numbers (a negative one included) are left as they are."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        try:
            float(value)
            return value
        except ValueError:
            return "'" + value
    return value


class SafeCsvWriter:
    """``csv.writer`` whose every cell goes through ``spreadsheet_safe`` (None as an empty cell)."""

    def __init__(self, out):
        self._writer = csv.writer(out)

    def writerow(self, row) -> None:
        self._writer.writerow(["" if v is None else spreadsheet_safe(clean(v)) for v in row])

    def writerows(self, rows) -> None:
        for row in rows:
            self.writerow(row)
