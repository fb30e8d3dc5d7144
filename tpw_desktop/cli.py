"""``tpw``: the headless command line over the same core as the desktop app.

Every user error ends as one line on stderr naming the thing and the
problem, with exit status 2 and no traceback.
"""
from __future__ import annotations

import math
import signal
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import click

from . import __version__, serialize
from .engine.gguf_info import format_params, format_size, read_model_facts
from .engine.llama_engine import EngineSettings, load_engine
from .engine.workloads import TestSpec, get_workload, load_workloads
from .errors import TpwError
from .paths import bundled_model_path
from .power import DEFAULT_RATE_HZ, DEFAULT_TDP_W, PowerEnvironment, Sampler, availability, open_sources
from .events import RunEvent, Status
from .session import MeasuredRun, RunOptions, RunReport

EXIT_USAGE = 2


# --- plumbing ------------------------------------------------------------------------------


def _err(message: str) -> None:
    click.echo(f"tpw: {message}", err=True)


def _fmt(value, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.{digits}f}"


class _CliGroup(click.Group):
    """Turns a TpwError anywhere below into one line and exit status 2."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except TpwError as exc:
            _err(str(exc))
            ctx.exit(EXIT_USAGE)


@contextmanager
def _stop_on_ctrl_c():
    """First Ctrl-C stops the run cleanly (the session is saved as cancelled); a second one aborts."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handler(signum, frame):
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        _err("stopping after the current token (Ctrl-C again to abort)")

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous)


class _Progress:
    """A run's listener: one status line on stderr, rewritten in place on a terminal."""

    def __init__(self, label: str, enabled: bool):
        self.label = label
        self.enabled = enabled
        self.tty = sys.stderr.isatty()

    def __call__(self, event: RunEvent) -> None:
        if isinstance(event, Status):
            self.status(event.message)

    def status(self, message: str) -> None:
        if not self.enabled:
            return
        line = f"tpw: {self.label}: {message}"
        if self.tty:
            click.echo(f"\r\x1b[2K{line}", err=True, nl=False)
        else:
            click.echo(line, err=True)

    def done(self) -> None:
        if self.enabled and self.tty:
            click.echo("\r\x1b[2K", err=True, nl=False)


def _printed_as_json_or_empty(rows: list, as_json: bool, empty_message: str) -> bool:
    """Print ``rows`` as JSON, or say there are none; True when nothing is left to print."""
    if as_json:
        click.echo(serialize.dumps(rows, indent=2))
        return True
    if not rows:
        click.echo(empty_message)
        return True
    return False


def _parse_counts(value: str, option: str) -> list[int]:
    try:
        counts = [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise click.BadParameter(f"expected token counts like 512 or 128,256, got {value!r}", param_hint=option) from None
    if any(c < 0 for c in counts):
        raise click.BadParameter("token counts can't be negative", param_hint=option)
    return [c for c in counts if c > 0]


# --- commands -------------------------------------------------------------------------------


@click.group(cls=_CliGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tpw")
@click.option(
    "--db",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="TPW_DB",
    help="Session database (default: the user data folder; env TPW_DB).",
)
@click.pass_context
def cli(ctx, db):
    """Measure how many tokens this machine produces per joule."""
    ctx.obj = {"db": db}


@cli.command()
@click.argument("models", nargs=-1, type=click.Path(path_type=Path))
@click.option("-p", "--n-prompt", default="512", show_default=True, help="Prompt-processing test sizes (pp), comma-separated; 0 skips.")
@click.option("-n", "--n-gen", default="128", show_default=True, help="Generation test sizes (tg), comma-separated; 0 skips.")
@click.option("-r", "--repetitions", default=RunOptions.repetitions, show_default=True, type=click.IntRange(1, 1000))
@click.option("-w", "--workload", "workloads", multiple=True, help="A named workload (see `tpw workloads`); repeatable. Replaces the pp/tg tests.")
@click.option("--ngl", "n_gpu_layers", type=int, default=None, help="GPU layers (default: all when the build supports a GPU, else 0).")
@click.option("--ctx", "n_ctx", type=click.IntRange(16), default=None, help="Context size (default: 4096, or larger if the tests need it).")
@click.option("-b", "--batch", "n_batch", type=click.IntRange(1), default=2048, show_default=True)
@click.option("-t", "--threads", "n_threads", type=click.IntRange(1), default=None, help="CPU threads (default: physical cores, as llama-bench).")
@click.option("--flash-attn", type=click.Choice(["auto", "on", "off"]), default="auto", show_default=True)
@click.option("--seed", type=int, default=1234, show_default=True)
@click.option("--no-warmup", is_flag=True, help="Skip the unrecorded warm-up run of each test.")
@click.option("--power", "power_spec", default="auto", show_default=True, help="Power sources: auto, nvml[:0+1], rapl, estimate[:TDP], replay:FILE; comma-separated.")
@click.option("--tdp-w", type=click.FloatRange(min=1), default=DEFAULT_TDP_W, show_default=True, help="CPU TDP for the estimate source.")
@click.option("--rate-hz", type=click.FloatRange(min=1, max=1000), default=DEFAULT_RATE_HZ, show_default=True, help="Power sampling rate.")
@click.option("--idle-s", type=click.FloatRange(min=0), default=RunOptions.idle_s, show_default=True, help="Idle-power baseline measured before the tests; 0 skips.")
@click.option("--settle-s", type=click.FloatRange(min=0), default=RunOptions.settle_s, show_default=True, help="Seconds left alone before the idle baseline (a GPU's power takes seconds to drop after work).")
@click.option("--delay", "delay_s", type=click.FloatRange(min=0), default=RunOptions.delay_s, show_default=True, help="Cool-down between tests, as llama-bench's --delay; power is then checked against idle.")
@click.option("--price", "price_per_kwh", type=click.FloatRange(min=0), default=None, help="Electricity price per kWh, for cost per 1M tokens.")
@click.option("--currency", default="USD", show_default=True)
@click.option("--no-save", is_flag=True, help="Don't record a session in the database.")
@click.option("--no-text", is_flag=True, help="Record the session without prompt and output text.")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable results on stdout.")
@click.option("-q", "--quiet", is_flag=True, help="No progress on stderr.")
@click.pass_obj
def bench(obj, models, n_prompt, n_gen, repetitions, workloads, n_gpu_layers, n_ctx, n_batch, n_threads,
          flash_attn, seed, no_warmup, power_spec, tdp_w, rate_hz, idle_s, settle_s, delay_s, price_per_kwh, currency,
          no_save, no_text, as_json, quiet):
    """Benchmark speed and energy, llama-bench style (default: the bundled model)."""
    if workloads:
        tests = [TestSpec.of(get_workload(name)) for name in workloads]
    else:
        tests = [TestSpec.pp(n) for n in _parse_counts(n_prompt, "-p")]
        tests += [TestSpec.tg(n) for n in _parse_counts(n_gen, "-n")]
    if not tests:
        raise click.UsageError("nothing to run: give -p or -n a size above 0, or a --workload")
    paths = list(models) or [None]
    for path in paths:  # a bad file fails before anything else starts
        if path is not None:
            read_model_facts(path)
    needed = max((t.n_tokens for t in tests), default=0) + 1
    settings = EngineSettings(
        n_gpu_layers=n_gpu_layers,
        n_ctx=n_ctx or max(4096, needed),
        n_batch=n_batch,
        n_threads=n_threads,
        flash_attn={"auto": None, "on": True, "off": False}[flash_attn],
        seed=seed,
    )
    options = RunOptions(
        repetitions=repetitions,
        warmup=not no_warmup,
        idle_s=idle_s,
        settle_s=settle_s,
        delay_s=delay_s,
        price_per_kwh=price_per_kwh,
        currency=currency,
        store_text=not no_text,
    )
    sources = open_sources(power_spec, PowerEnvironment(tdp_w=tdp_w))
    writer = None
    if not no_save:
        from .store import SessionWriter, Store

        with Store(obj["db"]) as store:
            store.recover_interrupted()
            db_path = store.path
        writer = SessionWriter(db_path)
    reports: list[RunReport] = []
    sampler = Sampler(sources, rate_hz=rate_hz)
    try:
        with _stop_on_ctrl_c() as stop, sampler:
            for path in paths:
                if stop.is_set():
                    break
                name = Path(path).name if path else "bundled SmolLM2-135M-Instruct Q4_1"
                progress = _Progress(name, enabled=not quiet)
                progress.status("loading the model")
                engine = load_engine(path, settings, on_warning=lambda m: _err(f"warning: {m}"))
                try:
                    run = MeasuredRun(engine, sampler, options, recorder=writer, listener=progress, stop=stop)
                    workload_text = (
                        {t.name: [c.messages for c in t.workload.calls] for t in tests if t.workload} or None
                    )
                    report = run.run(tests, workload_text)
                finally:
                    progress.done()
                    engine.close()
                reports.append(report)
    finally:
        for source in sources:
            source.close()
        if writer:
            writer.close()
    if as_json:
        click.echo(serialize.dumps({"tpw_version": __version__, "runs": [r.as_dict() for r in reports]}, indent=2))
    else:
        _print_bench_table(reports)
        for report in reports:
            if report.session_id is not None:
                click.echo(f"\nsaved session {report.session_id} ({report.status}) in {db_path}", err=True)
    if any(r.status == "cancelled" for r in reports):
        sys.exit(130)


def _backend(report: RunReport) -> str:
    build, settings = report.meta["build"], report.meta["settings"]
    if build["gpu_offload_supported"] and settings["n_gpu_layers"] != 0:
        for name in ("CUDA", "Metal", "Vulkan", "ROCm", "SYCL"):
            if name.upper() in build["system_info"].upper():
                return name
        return "GPU"
    return "CPU"


def _cell(value, digits: int, notes: dict[str, int], reason: str | None, sd=None) -> str:
    """A figure, ± its spread, or n/a with a footnote number pointing at why."""
    if value is None:
        if reason is None:
            return "n/a"
        number = notes.setdefault(reason, len(notes) + 1)
        return f"n/a [{number}]"
    return f"{value:.{digits}f}" + ("" if sd is None else f" ± {sd:.{digits}f}")


def _print_bench_table(reports: list[RunReport]) -> None:
    from tabulate import tabulate

    header = ["model", "size", "params", "backend", "ngl", "threads", "fa", "test", "t/s", "W",
              "tok/J", "tok/J >idle", "J/tok", "method"]  # fmt: skip
    rows, notes = [], {}
    for report in reports:
        model, settings = report.meta["model"], report.meta["settings"]
        for s in report.summaries:
            single_phase = s.test.startswith(("pp", "tg")) and s.phase == s.test[:2]
            p, why = s.pooled, s.pooled.unknown.get
            rows.append([
                f"{model['architecture']} {model['quantization']}",
                format_size(model["size_bytes"]),
                format_params(model["n_params"]),
                _backend(report),
                str(settings["n_gpu_layers"]),
                str(settings["n_threads"]),
                "on" if settings["flash_attn"] else "off",
                s.test if single_phase else f"{s.test}/{s.phase}",
                _cell(s.tokens_per_s[0], 2, notes, why("tokens_per_s"), s.tokens_per_s[1]),
                _cell(p.average_w, 1, notes, why("average_w")),
                _cell(p.tokens_per_j, 3, notes, why("tokens_per_j"), s.spread_sd.get("tokens_per_j")),
                _cell(p.tokens_per_j_above_idle, 3, notes, why("tokens_per_j_above_idle")),
                _cell(p.j_per_token, 4, notes, why("j_per_token")),
                p.method + ("" if p.confident else " (low confidence)"),
            ])
    click.echo(tabulate(rows, header, tablefmt="github", disable_numparse=True,
                        colalign=["left"] * 8 + ["right"] * 5 + ["left"]))
    for reason, number in notes.items():
        click.echo(f"[{number}] {reason}")
    for report in reports:
        if report.idle is not None:
            idle = report.idle
            settle = f" after {idle.settle_s:g} s settling" if idle.settle_s else ""
            click.echo(f"\nidle baseline: {idle.power_w:.1f} W over {idle.seconds:.1f} s{settle} "
                       f"({idle.method}{'' if idle.confident else ', low confidence'})")
        elif report.idle_reason:
            click.echo(f"\nidle baseline: none ({report.idle_reason})")
        for c in report.cooldowns:
            state = {True: "back near idle", False: "NOT back near idle", None: "unknown against idle"}[c.near_idle]
            click.echo(f"cool-down before {c.test}: {c.seconds:g} s, then {_fmt(c.power_w, 1)} W ({state})")
        low = {s.pooled.low_confidence for s in report.summaries if not s.pooled.confident} - {None}
        for reason in sorted(low):
            click.echo(f"low confidence: {reason}")
        methods = {s["name"]: s["method"] for s in report.meta["power_sources"]}
        if "estimated" in methods.values():
            click.echo("note: 'estimated' figures come from CPU busy time x TDP, not a sensor: "
                       "treat them as rough (errors of -60% to +190% are reported for this method).")


@cli.command()
@click.argument("folders", nargs=-1, type=click.Path(path_type=Path, file_okay=False))
@click.option("--json", "as_json", is_flag=True)
def models(folders, as_json):
    """List the bundled model and the GGUF files in model folders.

    Folders searched: those given, those in TPW_MODEL_DIRS (separated by
    the OS path separator), and ~/models if it exists.
    """
    from .models import find_models

    bundled = bundled_model_path()
    rows = [
        {"path": str(path), "bundled": path == bundled, **(facts.as_dict() if facts else {}), "problem": problem}
        for path, facts, problem in find_models(list(folders))
    ]
    if _printed_as_json_or_empty(rows, as_json, "no GGUF models found"):
        return
    for r in rows:
        if r["problem"]:
            click.echo(f"  {r['path']}\n      unusable: {r['problem']}")
            continue
        tag = " (bundled default)" if r["bundled"] else ""
        click.echo(
            f"{r['file_name']}{tag}\n      {r['architecture']} {r['quantization']}, {format_params(r['n_params'])} params, "
            f"{format_size(r['size_bytes'])}, context {r['n_ctx_train']}\n      {r['path']}"
        )


@cli.command()
def workloads():
    """List the named workloads that `tpw bench --workload` and the app can run."""
    for w in load_workloads().values():
        budget = sum(c.max_tokens for c in w.calls)
        click.echo(f"{w.name:14} {w.title}: {w.description} ({len(w.calls)} call(s), up to {budget} tokens)")


@cli.command()
@click.option("--tdp-w", type=click.FloatRange(min=1), default=DEFAULT_TDP_W, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def power(tdp_w, as_json):
    """Which power sources this machine has, and why the others are unavailable."""
    report = availability(PowerEnvironment(tdp_w=tdp_w))
    if as_json:
        click.echo(serialize.dumps([r.__dict__ for r in report], indent=2))
        return
    for item in report:
        mark = "yes" if item.available else "no "
        click.echo(f"{item.kind:9} {mark}  {item.detail}")
    click.echo("\nauto picks the first available of nvml, rapl, estimate. Choose with --power, e.g. --power nvml:0,rapl")


@cli.command()
@click.option("--power", "power_spec", default="auto", show_default=True)
@click.option("--tdp-w", type=click.FloatRange(min=1), default=DEFAULT_TDP_W, show_default=True)
@click.option("--interval", type=click.FloatRange(min=0.05), default=0.5, show_default=True, help="Seconds between lines.")
@click.option("--rate-hz", type=click.FloatRange(min=1, max=1000), default=DEFAULT_RATE_HZ, show_default=True)
@click.option("--count", type=click.IntRange(min=1), default=None, help="Stop after this many lines (default: until Ctrl-C).")
def watch(power_spec, tdp_w, interval, rate_hz, count):
    """Print live watts per source (each interval's energy over its length) until Ctrl-C."""
    sources = open_sources(power_spec, PowerEnvironment(tdp_w=tdp_w))
    sampler = Sampler(sources, rate_hz=rate_hz)
    click.echo("  ".join(f"{s.name} [{s.method}]: {s.measures}" for s in sources), err=True)
    lines = 0
    try:
        with sampler:
            sampler.wait_until(time.monotonic_ns())  # a first sample, so every interval has a left edge
            t_prev = time.monotonic_ns()
            while count is None or lines < count:
                time.sleep(interval)
                t_now = time.monotonic_ns()
                sampler.wait_until(t_now)
                cells = []
                for source, window in zip(sources, sampler.per_source_energy([(t_prev, t_now)], missing_ok=True)):
                    watts = f"{window.average_w:8.1f} W" if window is not None and window.known else "     n/a  "
                    cells.append(f"{source.name} {watts} ({source.method})")
                click.echo(time.strftime("%H:%M:%S  ") + "   ".join(cells))
                t_prev = t_now
                lines += 1
    except KeyboardInterrupt:
        pass
    finally:
        for source in sources:
            source.close()


# --- sessions -------------------------------------------------------------------------------


@cli.group()
def sessions():
    """List, show, export and delete recorded sessions."""


def _open_store(obj):
    from .store import Store

    store = Store(obj["db"])
    store.recover_interrupted()
    return store


@sessions.command("list")
@click.option("--model", help="Part of the model file name or GGUF name.")
@click.option("--quant", "quantization", help="Quantization, e.g. Q4_K_M.")
@click.option("--status", type=click.Choice(["running", "completed", "failed", "interrupted", "cancelled"]))
@click.option("--since", help="Started on or after this date (YYYY-MM-DD, UTC).")
@click.option("--until", help="Started before this date (YYYY-MM-DD, UTC).")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def sessions_list(obj, model, quantization, status, since, until, limit, as_json):
    """Recorded sessions, newest first."""
    with _open_store(obj) as store:
        rows = store.list_sessions(model=model, quantization=quantization, status=status, since=since,
                                   until=until, limit=limit)
    if _printed_as_json_or_empty(rows, as_json, "no sessions"):
        return
    click.echo(f"{'id':>5}  {'started (UTC)':19}  {'status':11}  {'model':38}  {'quant':7}  {'method':9}  headline")
    for r in rows:
        headline = ""
        for s in r.get("summary") or []:
            if s["phase"] in ("tg", "total"):
                headline = f"{s['test']}/{s['phase']} {_fmt(s['tokens_per_s_mean'])} t/s, {_fmt(s['tokens_per_j'], 3)} tok/J"
                break
        click.echo(f"{r['id']:>5}  {r['started_at'][:19].replace('T', ' '):19}  {r['status']:11}  "
                   f"{(r['model'] or '')[:38]:38}  {r['quantization'] or '':7}  {r['method'] or '':9}  {headline}")


@sessions.command("show")
@click.argument("session_id", type=int)
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def sessions_show(obj, session_id, as_json):
    """One session: model, settings, power sources, idle baseline, summary."""
    with _open_store(obj) as store:
        s = store.session(session_id)
        n_samples = store.sample_count(session_id)
    if as_json:
        click.echo(serialize.dumps({**s, "n_samples": n_samples}, indent=2))
        return
    click.echo(f"session {s['id']}: {s['status']}, {s['started_at']} -> {s['ended_at'] or '...'}")
    click.echo(f"model:   {s['model']} ({s['architecture']} {s['quantization']}, {format_params(s['n_params'] or 0)} "
               f"params, {format_size(s['size_bytes'] or 0)})  sha256 {s['model_sha256'] or 'not yet computed'}")
    click.echo(f"engine:  llama-cpp-python {s['llama_cpp_version']}; " + ", ".join(
        f"{k}={v}" for k, v in (s["settings"] or {}).items()))
    click.echo(f"machine: {s['cpu']}, {s['ram_gib']} GiB, {s['os']}")
    for src in s["sources"]:
        click.echo(f"power:   {src['name']} [{src['method']}] {src['measures']}")
    if s["idle_power_w"] is not None:
        click.echo(f"idle:    {s['idle_power_w']:.2f} W over {s['idle_seconds']:.1f} s ({s['idle_method']})")
    click.echo(f"samples: {n_samples}")
    if s["error"]:
        click.echo(f"error:   {s['error']}")
    for row in s.get("summary") or []:
        click.echo(f"  {row['test']}/{row['phase']:5}  {_fmt(row['tokens_per_s_mean'])} t/s  "
                   f"{_fmt(row['average_w'], 1)} W  {_fmt(row['tokens_per_j'], 3)} tok/J  "
                   f"{_fmt(row['j_per_token'], 4)} J/tok  [{row['method']}"
                   f"{'' if row['confident'] else ', low confidence'}]")


@sessions.command("compare")
@click.argument("session_ids", type=int, nargs=-1)
@click.option("--model", help="Instead of ids: sessions whose model name contains this.")
@click.option("--quant", "quantization", help="Instead of ids: sessions of this quantization.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def sessions_compare(obj, session_ids, model, quantization, as_json):
    """Sessions side by side: one row per session, test and phase (e.g. Q4_K_M vs Q8_0)."""
    if not session_ids and not (model or quantization):
        raise click.UsageError("give session ids, or --model / --quant to pick sessions")
    with _open_store(obj) as store:
        rows = store.summary_rows(list(session_ids) or None, model=model, quantization=quantization)
    if _printed_as_json_or_empty(rows, as_json, "no results to compare"):
        return
    click.echo(f"{'id':>5}  {'model':34}  {'quant':7}  {'test/phase':16}  {'t/s':>9}  {'W':>7}  {'tok/J':>7}  "
               f"{'tok/J>idle':>10}  {'J/tok':>8}  method")
    for r in rows:
        above = r["tokens_per_j_above_idle"]
        click.echo(f"{r['session_id']:>5}  {(r['model'] or '')[:34]:34}  {r['quantization'] or '':7}  "
                   f"{r['test'] + '/' + r['phase']:16}  {_fmt(r['tokens_per_s_mean']):>9}  {_fmt(r['average_w'], 1):>7}  "
                   f"{_fmt(r['tokens_per_j'], 3):>7}  {_fmt(above, 3):>10}  {_fmt(r['j_per_token'], 4):>8}  "
                   f"{r['method']}{'' if r['confident'] else ' (low confidence)'}")


@sessions.command("export")
@click.argument("session_id", type=int)
@click.option("--format", "fmt", type=click.Choice(["csv", "json"]), default="json", show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="File to write (default: stdout).")
@click.pass_obj
def sessions_export(obj, session_id, fmt, output):
    """Every sample and result of a session (JSON also has calls and tokens)."""
    with _open_store(obj) as store:
        if output is None:
            store.export(session_id, fmt, sys.stdout)
            return
        with open(output, "w", newline="") as f:
            store.export(session_id, fmt, f)
    click.echo(f"wrote {output}", err=True)


@sessions.command("delete")
@click.argument("session_id", type=int)
@click.option("-y", "--yes", is_flag=True, help="Don't ask.")
@click.pass_obj
def sessions_delete(obj, session_id, yes):
    """Delete a session and all its samples."""
    with _open_store(obj) as store:
        s = store.session(session_id)
        if not yes and not click.confirm(f"delete session {session_id} ({s['model']}, {s['started_at']})?"):
            return
        store.delete(session_id)
    click.echo(f"deleted session {session_id}", err=True)


def main() -> None:
    """Console entry point."""
    cli.main(prog_name="tpw")
