"""A comparison as a shareable report: one self-contained HTML file, CSV and JSON of every figure, SVG charts.

The HTML holds its charts inline (SVG), the machine, build and model facts,
each figure's method and confidence, why a missing figure is missing, and
the commands that reproduce the runs: a file to attach to a forum post.
"""

from __future__ import annotations

import datetime as dt
import html
import io
import shlex
from pathlib import Path

from .. import __version__, serialize
from ..errors import TpwError
from ..files import atomic_writer
from ..record import fields
from ..record.stored import StoredSession
from ..serialize import SafeCsvWriter
from . import svg_charts
from .compare import ComparedRow, Comparison, measured_what, plus_minus, ratio_text
from .history import settings_lines
from .labels import short_labels


def csv_text(comparison: Comparison) -> str:
    """Every compared row, columns from ``ComparedRow``'s field list; every cell spreadsheet-safe."""
    out = io.StringIO()
    writer = SafeCsvWriter(out)
    columns = fields.column_names(ComparedRow)
    writer.writerow(columns)
    for row in fields.rows(comparison.rows):
        writer.writerow([row[c] for c in columns])
    return out.getvalue()


def json_text(comparison: Comparison) -> str:
    return serialize.dumps({"tpw_version": __version__, **comparison.as_json()}, indent=2)


def charts(comparison: Comparison) -> dict[str, str]:
    """The report's charts, by file stem: efficiency and speed bars, the frontier, the power-limit curve."""
    main = comparison.main_rows()
    names = [r.variant for r in main]
    labels = short_labels(names)
    what = ", ".join(sorted({f"{r.test}/{r.phase}" for r in main}))
    out = {
        "efficiency": svg_charts.bars(
            f"Efficiency ({what}), mean ± sd",
            "tokens per joule (tok/J)",
            labels,
            [r.tokens_per_j.mean for r in main],
            [r.tokens_per_j.sd for r in main],
            names,
        ),
        "speed": svg_charts.bars(
            f"Speed ({what}), mean ± sd",
            "tokens per second (tok/s)",
            labels,
            [r.tokens_per_s.mean for r in main],
            [r.tokens_per_s.sd for r in main],
            names,
        ),
        "frontier": svg_charts.scatter(
            "Speed against efficiency (up and right is better)",
            "tokens per second (tok/s)",
            "tokens per joule (tok/J)",
            [(label, r.tokens_per_s.mean, r.tokens_per_j.mean) for label, r in zip(labels, main)],
            names,
        ),
    }
    limits = [r for r in main if r.power_limit_w is not None]
    if len(limits) > 1:
        limits.sort(key=lambda r: r.power_limit_w)
        best = comparison.best_power_limit()
        xs = [r.power_limit_w for r in limits]
        out["power-limit-efficiency"] = svg_charts.curve(
            "Efficiency against the power limit",
            "GPU power limit (W)",
            "tokens per joule (tok/J)",
            xs,
            [r.tokens_per_j.mean for r in limits],
            best.power_limit_w if best else None,
        )
        out["power-limit-speed"] = svg_charts.curve(
            "Speed against the power limit",
            "GPU power limit (W)",
            "tokens per second (tok/s)",
            xs,
            [r.tokens_per_s.mean for r in limits],
        )
    return out


def _row_html(r: ComparedRow) -> str:
    why = "".join(f"<br><small>{html.escape(k)}: {html.escape(v)}</small>" for k, v in r.unknown.items())
    cells = [
        html.escape(r.variant),
        f"{html.escape(r.test)}/{r.phase}",
        str(r.runs),
        plus_minus(r.tokens_per_s, 2),
        plus_minus(r.tokens_per_j, 3),
        plus_minus(r.j_per_token, 4),
        plus_minus(r.average_w, 1),
        ratio_text(r.ratio_tokens_per_s),
        ratio_text(r.ratio_tokens_per_j),
        html.escape(r.method_text) + why,
    ]
    return "<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"


def _session_row(s: StoredSession) -> str:
    meta = s.meta
    limit = meta.sweep.power_limit_w if meta.sweep else None
    sources = ", ".join(f"{src.name} [{src.method}: {measured_what(src)}]" for src in meta.power_sources)
    m = meta.machine
    cells = [
        str(s.id),
        html.escape(meta.sweep.variant if meta.sweep else ""),
        f"{html.escape(meta.model.file_name)}<br><small>{html.escape(s.model_sha256 or '')}</small>",
        html.escape(meta.model.quantization),
        html.escape(f"{m.cpu}, {m.ram_gib} GiB, {m.os}"),
        html.escape(f"llama-cpp-python {meta.build.llama_cpp_python_version}{' (GPU)' if meta.on_gpu else ''}"),
        "<br>".join(html.escape(line) for line in settings_lines(s)),
        "" if limit is None else f"{limit:g} W",
        html.escape(sources),
    ]
    return "<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"


def commands(comparison: Comparison) -> list[str]:
    """What reproduces the runs: the sweep's own command, or one tpw bench per session."""
    if comparison.sweep and comparison.sweep.command:
        return [comparison.sweep.command]
    out = []
    for s in comparison.sessions:
        meta = s.meta
        if meta.server is not None:
            args = ["tpw", "bench", "--endpoint", meta.server.url, "--api-model", meta.server.api_model]
        else:
            settings = meta.settings
            args = ["tpw", "bench", meta.model.path, "-r", str(meta.options.repetitions)]
            if settings is not None:
                args += ["--ctx", str(settings.n_ctx), "-b", str(settings.n_batch)]
                if settings.n_threads:
                    args += ["-t", str(settings.n_threads)]
        tests = [t.name for t in meta.tests]
        out.append(shlex.join(args) + f"  # the tests of session {s.id}: {', '.join(tests)}")
    return list(dict.fromkeys(out))


def _legend(comparison: Comparison) -> str:
    """The charts' labels beside the variants' full names, when the labels are shortened."""
    names = [r.variant for r in comparison.main_rows()]
    pairs = [(label, name) for label, name in zip(short_labels(names), names) if label != name]
    if not pairs:
        return ""
    items = "".join(f"<li><b>{html.escape(label)}</b>: {html.escape(name)}</li>" for label, name in pairs)
    return f"<p>In the charts:</p><ul class=legend>{items}</ul>"


def html_report(comparison: Comparison, title: str = "tpw-desktop comparison") -> str:
    rows = "".join(_row_html(r) for r in comparison.rows)
    figures = "".join(f"<figure>{svg}</figure>" for svg in charts(comparison).values()) + _legend(comparison)
    warnings = "".join(f"<p class=warning>⚠ {html.escape(w)}</p>" for w in comparison.differences)
    best = comparison.best_power_limit()
    best_text = (
        (
            f"<p>Most tokens per joule at a power limit of <b>{best.power_limit_w:g} W</b>: "
            f"{best.tokens_per_j.mean:.3f} tok/J at {best.tokens_per_s.mean:.1f} tok/s.</p>"
        )
        if best
        else ""
    )
    sessions = "".join(_session_row(s) for s in comparison.sessions)
    reproduce = "".join(f"<pre>{html.escape(c)}</pre>" for c in commands(comparison))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}}
table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}
td:first-child,th:first-child{{text-align:left}}.warning{{background:#fff1c2;padding:6px}}
figure{{display:inline-block;margin:0.5em}}small{{color:#666}}
pre{{white-space:pre-wrap;overflow-wrap:anywhere;background:#f6f6f6;padding:6px}}</style></head>
<body><h1>{html.escape(title)}</h1>
<p>Made by tpw-desktop {__version__} on {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC.
Baseline for the ratios: <b>{html.escape(comparison.baseline)}</b>.</p>
{warnings}{best_text}
<h2>Figures</h2>
<table><tr><th>variant</th><th>test/phase</th><th>runs</th><th>tok/s</th><th>tok/J</th><th>J/token</th><th>W</th>
<th>tok/s vs baseline</th><th>tok/J vs baseline</th><th>method</th></tr>{rows}</table>
<p>Speed is the mean of runs ± their sd. Energy figures pool all runs' tokens over all their joules (± the sd
between runs). <i>counter</i>: an energy counter, differenced; <i>sampled</i>: power readings, integrated;
<i>estimated</i>: CPU busy time × TDP, a model and not a measurement; <i>replayed</i>: a recorded trace.
<i>low confidence</i>: the figure's error bound is over 10% of it, or it lasted under a second.</p>
<h2>Charts</h2>{figures}
<h2>Sessions</h2>
<table><tr><th>id</th><th>variant</th><th>model</th><th>quant</th><th>machine</th><th>build</th><th>settings</th>
<th>power limit</th><th>power sources</th></tr>{sessions}</table>
<h2>Reproduce</h2>{reproduce}
</body></html>
"""


def write_report(comparison: Comparison, path: str | Path) -> None:
    """The comparison as .html, .csv or .json, by the file's extension; written whole or not at all."""
    target = Path(path)
    text = {".html": html_report, ".htm": html_report, ".csv": csv_text, ".json": json_text}.get(target.suffix.lower())
    if text is None:
        raise TpwError(f"{target}: a report is .html, .csv or .json")
    with atomic_writer(target) as f:
        f.write(text(comparison))
