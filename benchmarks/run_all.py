"""`make bench`: every benchmark, then docs/performance.md and its raw JSON.

Each benchmark compares by ratios measured alternately within one run, or
by costs that don't drift with the machine (CPU time of one thread, time
outside llama_decode). The report says, per figure, the goal, what was
measured and whether it was met, with the machine and the date.

    .venv/bin/python benchmarks/run_all.py [--quick] [--only engine,sampler,...] [--out docs/performance.md]
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import sys
import time
import traceback
from pathlib import Path

from common import ROOT, Result

BENCHMARKS = ("engine", "sampler", "store", "gui", "dashboard", "fleet")


def machine() -> dict:
    from dataclasses import asdict

    import psutil

    from tpw_desktop.engine.settings import build_facts
    from tpw_desktop.run.meta import machine_facts

    build = build_facts()
    return {
        **asdict(machine_facts()),
        "llama_cpp_python": build.llama_cpp_python_version,
        "gpu_offload": build.gpu_offload_supported,
        "load_average": list(psutil.getloadavg()),
    }


def run_one(name: str, quick: bool, llama_bench: str | None) -> Result:
    if name == "engine":
        import engine_speed

        return engine_speed.run(quick, llama_bench=llama_bench)
    module = {
        "sampler": "sampler_rate",
        "store": "store_perf",
        "gui": "gui_perf",
        "dashboard": "gui_cost",
        "fleet": "fleet_scale",
    }[name]
    return __import__(module).run(quick)


def markdown(results: list[Result], failures: dict[str, str], facts: dict, seconds: float, quick: bool) -> str:
    lines = [
        "# Performance: what tpw costs the engine it measures",
        "",
        "Written by `make bench` (`benchmarks/run_all.py`; `--only NAME` reruns one benchmark and keeps the "
        "others' figures, each with its date). Ratios are measured alternately within one run, because this "
        "machine's speed drifts by ±20% within minutes.",
        "",
        f"- date: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC; {seconds / 60:.1f} min"
        + (" (quick smoke run: the figures are not meant to be read)" if quick else "")
        + ("; figures from earlier runs say when they ran" if len({r.date for r in results}) > 1 else ""),
        f"- machine: {facts['cpu']}, {facts['cpu_logical']} logical CPUs ({facts['cpu_physical']} physical), "
        f"{facts['ram_gib']} GiB, {facts['os']}, Python {facts['python']}",
        f"- llama-cpp-python {facts['llama_cpp_python']} ({'GPU offload' if facts['gpu_offload'] else 'CPU build'}); "
        f"load average at the start {', '.join(f'{x:.2f}' for x in facts['load_average'])}",
        "",
        "| figure | goal | measured | met | command |",
        "|---|---|---|---|---|",
    ]
    for r in results:
        for f in r.figures:
            met = {True: "yes", False: "**no**", None: "–"}[f.ok]
            note = f" ({f.note})" if f.note else ""
            when = f"<br>{r.date} UTC" if r.date else ""
            lines.append(f"| {f.name}{note} | {f.goal or '–'} | {f.measured} | {met} | `{r.command}`{when} |")
    for name, error in failures.items():
        lines.append(f"| {name}: did not run | – | {error} | **no** | |")
    for r in results:
        for t in r.tables:
            lines += [
                "",
                f"### {r.name}: {t.title}",
                "",
                "| " + " | ".join(t.columns) + " |",
                "|" + "---|" * len(t.columns),
            ]
            lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in t.rows]
    lines += ["", "GPU figures, when a GPU machine was available, are in [gpu-results.md](gpu-results.md).", ""]
    return "\n".join(lines)


def kept_and_new(previous_json: Path, new: list[Result]) -> list[Result]:
    """With --only, the page keeps the other benchmarks' last figures (each says when it ran)."""
    try:
        previous = json.loads(previous_json.read_text())
    except (OSError, ValueError):
        return new
    if previous.get("quick"):
        return new
    by_name = {r["name"]: Result.from_json(r) for r in previous.get("results", [])}
    by_name.update({r.name: r for r in new})
    order = {name: i for i, name in enumerate(BENCHMARKS)}
    return sorted(by_name.values(), key=lambda r: order.get(r.name, len(order)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run of every benchmark (seconds, not minutes)")
    parser.add_argument("--only", help=f"comma-separated, from {', '.join(BENCHMARKS)}")
    parser.add_argument("--llama-bench", help="a llama-bench binary built from the vendored llama.cpp")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "performance.md")
    args = parser.parse_args()
    names = args.only.split(",") if args.only else list(BENCHMARKS)
    started = time.monotonic()
    facts = machine()
    results, failures = [], {}
    for name in names:
        print(f"bench: {name}…", file=sys.stderr, flush=True)
        try:
            result = run_one(name, args.quick, args.llama_bench)
            result.date = f"{dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M}"
            results.append(result)
        except Exception as exc:  # noqa: BLE001 - one broken benchmark must not lose the others' figures
            traceback.print_exc()
            failures[name] = f"{type(exc).__name__}: {exc}"
    seconds = time.monotonic() - started
    if args.only and not args.quick:
        results = kept_and_new(args.out.with_suffix(".json"), results)
    args.out.write_text(markdown(results, failures, facts, seconds, args.quick))
    raw = {
        "machine": facts,
        "seconds": seconds,
        "quick": args.quick,
        "failures": failures,
        "results": [dataclasses.asdict(r) for r in results],
    }
    args.out.with_suffix(".json").write_text(json.dumps(raw, indent=2, default=str))
    print(f"wrote {args.out} and {args.out.with_suffix('.json')}", file=sys.stderr)
    for r in results:
        for f in r.figures:
            print(f"{'ok ' if f.ok else 'NO ' if f.ok is False else '-  '} {f.name}: {f.measured} (goal {f.goal})")
    if failures:
        sys.exit(1)


if __name__ == "__main__":
    main()
