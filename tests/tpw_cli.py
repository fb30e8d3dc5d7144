"""Running the real `tpw` command as a user does, and what every figure it prints must satisfy."""

import subprocess
import sys
from pathlib import Path

TPW = str(Path(sys.executable).with_name("tpw"))

EFFICIENCY_FIGURES = (
    "joules",
    "average_w",
    "tokens_per_j",
    "j_per_token",
    "wh_per_1k_tokens",
    "joules_above_idle",
    "tokens_per_j_above_idle",
    "j_per_token_above_idle",
)


def assert_every_figure_is_a_number_or_says_why(row):
    """Issue 8: a figure is a positive number below any absurd size, or null with its reason."""
    for key in EFFICIENCY_FIGURES:
        value = row[key]
        if value is None:
            assert row["unknown"][key], f"{key} is null without a reason"
        else:
            assert 0 < value < 1e6, f"{key} = {value}"


def run_tpw(*args, db=None, timeout=300, **kwargs):
    env_db = ["--db", str(db)] if db else []
    return subprocess.run([TPW, *env_db, *args], capture_output=True, text=True, timeout=timeout, **kwargs)
