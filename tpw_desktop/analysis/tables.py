"""Tables of a session's summaries for a human: the window's and the CLI's are the same text.

Headers and decimals come from the records' field lists (``record.fields``);
a figure that is unknown says why (in the cell, or as a numbered footnote),
never a bare blank or a 0.
"""

from __future__ import annotations

from collections.abc import Sequence

from tabulate import tabulate

from ..record import fields
from ..record.results import TestSummary
from ..run.server import clients

_COLUMNS = {c.name: c for c in fields.columns(TestSummary)}


def header(name: str) -> str:
    return _COLUMNS[name].header


def figure(summary: TestSummary, name: str, notes: dict[str, int] | None = None) -> str:
    """A pooled figure of a summary as printed: its value, or n/a with why (inline, or a footnote number)."""
    value = getattr(summary.pooled, name) if hasattr(summary.pooled, name) else getattr(summary, name)
    if value is not None:
        return _COLUMNS[name].text(value)
    why = summary.pooled.unknown.get(name)
    if why is None:
        return "n/a"
    if notes is None:
        return f"n/a ({why})"
    return f"n/a [{notes.setdefault(why, len(notes) + 1)}]"


def speed(summary: TestSummary) -> str:
    """Mean tokens/s ± the sd between repetitions, as llama-bench prints it."""
    text = figure(summary, "tokens_per_s_mean")
    return text + (f" ± {summary.tokens_per_s_sd:.2f}" if summary.tokens_per_s_sd else "")


def summary_table(summaries: Sequence[TestSummary]) -> list[tuple[str, ...]]:
    """Rows of a session's summaries, a header first: what History's details and ``tpw sessions show`` print."""
    names = ("tokens_per_j", "j_per_token", "average_w")
    rows: list[tuple[str, ...]] = [("test", "phase", header("repetitions"), "tok/s", *map(header, names), "method")]
    for s in summaries:
        rows.append((s.test, s.phase, str(s.repetitions), speed(s), *(figure(s, n) for n in names), s.method_text))
    return rows


def text_table(rows: list[tuple[str, ...]], tablefmt: str = "simple") -> str:
    return tabulate(rows[1:], rows[0], tablefmt=tablefmt, disable_numparse=True)


def levels_table(levels: Sequence[TestSummary], *, brief: bool = False, tablefmt: str = "github") -> str:
    """The tokens/J-against-clients table of a server's levels; a missing figure says why.

    ``brief``: clients, t/s, W, tok/J and method only, for the window's output pane.
    """
    rows = []
    for s in levels:
        lv, lat = s.level, s.latency
        assert lv is not None
        itl = "n/a" if lat is None or lat.inter_token_p50_ms is None else f"{lat.inter_token_p50_ms:.1f}"
        ttft = "n/a" if lat is None or lat.time_to_first_token_s is None else f"{lat.time_to_first_token_s:.3f}"
        common = [figure(s, "tokens_per_s"), figure(s, "average_w"), figure(s, "tokens_per_j")]
        if brief:
            rows.append([lv.concurrency, *common, s.method_text])
            continue
        tokens_from = lv.counted_by + (f" ({lv.count_note})" if lv.count_note else "")
        rows.append(
            [
                lv.concurrency,
                lv.requests,
                s.pooled.tokens,
                *common,
                figure(s, "j_per_token"),
                ttft,
                f"{itl} per {lv.inter_token_basis}",
                tokens_from,
                s.method_text,
            ]
        )
    headers = ["clients", "t/s", "W", "tok/J", "method"]
    if not brief:
        headers = [
            "clients",
            "requests",
            "tokens",
            "t/s",
            "W",
            "tok/J",
            "J/tok",
            "TTFT s",
            "ITL p50 ms",
            "tokens from",
            "method",
        ]
    return tabulate(rows, headers, tablefmt=tablefmt, disable_numparse=True)


def cut_short_note(levels: Sequence[TestSummary]) -> str | None:
    """What to tell a user whose server cut streams short; None if none was."""
    cut = [
        f"{s.level.cut_short} of {s.level.requests} at {clients(s.level.concurrency)}"
        for s in levels
        if s.level is not None and s.level.cut_short
    ]
    if not cut:
        return None
    return (
        f"streams ended without a finish reason ({', '.join(cut)}): the server cut them short, so those levels "
        "did less work than asked (llama_cpp.server does this when a new request arrives; start it with "
        "--interrupt_requests False to measure concurrency)"
    )
