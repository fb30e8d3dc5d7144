"""``tpw sessions``: list, show, compare, export and delete recorded sessions.

Reading commands work on a read-only database too; writing ones (delete)
say it is read-only. An export is written whole or not at all.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .. import serialize
from ..analysis.history import headline_label, session_details
from ..analysis.tables import figure, speed, text_table
from ..files import atomic_writer
from ..peers.text import plain
from ..record import fields
from ..record.stored import StoredSession
from ..record.vocab import STATUSES
from .common import db_option, output_options, parse_day, print_rows


@click.group()
def sessions():
    """List, show, compare, export and delete recorded sessions."""


def _reading(obj):
    from ..store import Store

    return Store.for_reading(obj.get("db"))


def _headline(session: StoredSession) -> str:
    """The session's one headline figure, as History and the window's tiles show it."""
    main = session.headline
    if main is None:
        return ""
    return f"{headline_label(main)}: {speed(main)} t/s, {figure(main, 'tokens_per_j')} tok/J"


@sessions.command("list")
@click.option("--model", help="Part of the model file name or GGUF name.")
@click.option("--quant", "quantization", help="Quantization, e.g. Q4_K_M.")
@click.option("--status", type=click.Choice(STATUSES))
@click.option("--since", callback=parse_day, help="Started on or after this date (YYYY-MM-DD, UTC).")
@click.option("--until", callback=parse_day, help="Started before this date (YYYY-MM-DD, UTC).")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@output_options
@db_option
@click.pass_obj
def sessions_list(obj, model, quantization, status, since, until, limit, as_json, as_csv, table_format):
    """Recorded sessions, newest first."""
    with _reading(obj) as store:
        rows = store.list_sessions(
            model=model, quantization=quantization, status=status, since=since, until=until, limit=limit
        )
    shown = [
        {
            "id": r.id,
            "started": r.started_at[:19].replace("T", " "),
            "status": r.status,
            "model": r.meta.model.file_name,
            "quantization": r.meta.model.quantization,
            "method": r.meta.method,
            "headline": _headline(r),
        }
        for r in rows
    ]
    columns = [
        ("id", "id"),
        ("started", "started (UTC)"),
        ("status", "status"),
        ("model", "model"),
        ("quantization", "quant"),
        ("method", "method"),
        ("headline", "headline"),
    ]
    print_rows(shown, columns, as_json=as_json, as_csv=as_csv, table_format=table_format, empty="no sessions", raw=rows)


@sessions.command("show")
@click.argument("session_id", type=int)
@click.option("--json", "as_json", is_flag=True)
@db_option
@click.pass_obj
def sessions_show(obj, session_id, as_json):
    """One session: model, settings, power sources, idle baseline, summary."""
    with _reading(obj) as store:
        s = store.session(session_id)
        n_samples = store.sample_count(session_id)
    if as_json:
        summaries = fields.rows(s.outcome.summaries, json_text=False)
        click.echo(serialize.dumps({"session": s, "summaries": summaries, "n_samples": n_samples}, indent=2))
        return
    summary, facts = session_details(s)
    click.echo(f"session {s.id}: {s.status}, {s.started_at} -> {s.ended_at or '...'}")
    for label, value in [*facts, ("samples", str(n_samples))]:
        click.echo(f"{label + ':':14} {plain(value, 500)}")
    if len(summary) > 1:
        click.echo("")
        click.echo(text_table(summary))


@sessions.command("compare")
@click.argument("session_ids", type=int, nargs=-1)
@click.option("--sweep", "sweep_id", type=int, help="Instead of ids: every session of a sweep, pooled by variant.")
@click.option("--model", help="Instead of ids: sessions whose model name contains this.")
@click.option("--quant", "quantization", help="Instead of ids: sessions of this quantization.")
@click.option("--baseline", help="The variant the ratios are against (default: the first).")
@click.option(
    "--report", type=click.Path(dir_okay=False, path_type=Path), help="Write the comparison (.html, .csv, .json)."
)
@click.option(
    "--charts", "charts_dir", type=click.Path(file_okay=False, path_type=Path), help="Write its charts (SVG) here."
)
@click.option("--json", "as_json", is_flag=True)
@db_option
@click.pass_obj
def sessions_compare(obj, session_ids, sweep_id, model, quantization, baseline, report, charts_dir, as_json):
    """Sessions or a sweep side by side: mean ± sd per figure, ratios against a baseline (e.g. Q4_K_M vs Q8_0)."""
    from ..analysis.compare import compare
    from .sweep import show_comparison, write_charts

    if not session_ids and sweep_id is None and not (model or quantization):
        raise click.UsageError("give session ids, --sweep ID, or --model / --quant to pick sessions")
    with _reading(obj) as store:
        if not session_ids and sweep_id is None:
            picked = store.list_sessions(model=model, quantization=quantization, limit=None)
            session_ids = [s.id for s in reversed(picked)]
        comparison = compare(store, list(session_ids) or None, sweep_id=sweep_id, baseline=baseline)
    show_comparison(comparison, as_json, report)
    if charts_dir is not None:
        for path in write_charts(comparison, charts_dir):
            click.echo(f"wrote {path}", err=True)


@click.command("sweeps")
@output_options
@db_option
@click.pass_obj
def sweeps_command(obj, as_json, as_csv, table_format):
    """Recorded sweeps, newest first (compare one with `tpw sessions compare --sweep ID`)."""
    with _reading(obj) as store:
        rows = store.sweeps()
    shown = [
        {
            "id": r.id,
            "started": r.started_at[:19].replace("T", " "),
            "status": r.status,
            "kind": r.kind,
            "n_sessions": len(r.session_ids),
            "variants": ", ".join(r.variants),
        }
        for r in rows
    ]
    print_rows(
        shown,
        [
            ("id", "id"),
            ("started", "started (UTC)"),
            ("status", "status"),
            ("kind", "kind"),
            ("n_sessions", "runs"),
            ("variants", "variants"),
        ],
        as_json=as_json,
        as_csv=as_csv,
        table_format=table_format,
        empty="no sweeps",
        raw=rows,
    )


@sessions.command("export")
@click.argument("session_id", type=int)
@click.option("--format", "export_format", type=click.Choice(["csv", "json"]), default="json", show_default=True)
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="File to write (default: stdout)."
)
@db_option
@click.pass_obj
def sessions_export(obj, session_id, export_format, output):
    """Every sample and result of a session (JSON also has calls and tokens)."""
    with _reading(obj) as store:
        store.session(session_id)  # an unknown id fails before any file is touched
        if output is None:
            store.export(session_id, export_format, sys.stdout)
            return
        with atomic_writer(output, newline="") as f:
            store.export(session_id, export_format, f)
    click.echo(f"wrote {output}", err=True)


@sessions.command("delete")
@click.argument("session_id", type=int)
@click.option("-y", "--yes", is_flag=True, help="Don't ask.")
@db_option
@click.pass_obj
def sessions_delete(obj, session_id, yes):
    """Delete a session and all its samples."""
    from ..store import Store

    with Store(obj.get("db")) as store:
        s = store.session(session_id)
        if not yes and not click.confirm(f"delete session {session_id} ({s.meta.model.file_name}, {s.started_at})?"):
            return
        store.delete(session_id)
    click.echo(f"deleted session {session_id}", err=True)
