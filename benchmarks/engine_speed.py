"""Does tpw report the engine's speed, not its own? tg and pp through tpw's whole measured path,
against a bare llama.cpp loop and against llama-bench, alternately.

Arms, in alternating order round after round (this machine's speed drifts
by ±20% within minutes; only side-by-side ratios mean anything):
- tpw: ``MeasuredRun`` with the sampler at 50 Hz (a replayed trace) and the
  session writer committing to a real SQLite file: everything `tpw bench`
  and the window's measuring process do;
- bare: the same model and settings, and nothing but ``llama_decode`` in a
  Python loop (llama-cpp-python's low-level API);
- llama-bench, when one is found (``--llama-bench PATH``, $LLAMA_BENCH, or
  on PATH; the README says how to build it from the vendored llama.cpp).
Also the time per token spent outside ``llama_decode`` (llama.cpp's own
t_eval against the window), which does not drift with the machine, and how
it scales with model size.

    .venv/bin/python benchmarks/engine_speed.py [--rounds 6] [--llama-bench PATH]
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from common import Figure, Result, Table, median_ratio

TG_GOAL = 1.0  # tpw tg / llama-bench tg
PP_GOAL = 0.98
OUTSIDE_GOAL_US = 20.0


def find_llama_bench(given: str | None) -> str | None:
    for candidate in (given, os.environ.get("LLAMA_BENCH"), shutil.which("llama-bench")):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


class Bare:
    """The engine's speed with nothing around it: llama_decode in a loop, timed by llama.cpp itself too."""

    def __init__(self, model: Path, settings):
        import llama_cpp

        self.lib = llama_cpp
        self.llm = llama_cpp.Llama(
            model_path=str(model),
            n_gpu_layers=settings.n_gpu_layers,
            n_ctx=settings.n_ctx,
            n_batch=settings.n_batch,
            n_ubatch=settings.n_ubatch,
            n_threads=settings.n_threads,
            n_threads_batch=settings.n_threads,
            flash_attn=settings.flash_attn,
            seed=settings.seed,
            verbose=False,
        )
        self.ctx = self.llm._ctx.ctx  # a benchmark may reach inside; tpw itself does so in one module only
        self.batch = settings.n_batch

    def _clear(self) -> None:
        lib = self.lib
        lib.llama_memory_clear(lib.llama_get_memory(self.ctx), True)
        lib.llama_perf_context_reset(self.ctx)

    def tg(self, n: int) -> tuple[float, float]:
        """tokens/s and µs per token outside llama_decode, for n single-token decodes."""
        lib = self.lib
        self._clear()
        one = (lib.llama_token * 1)(self.llm.token_bos())
        t0 = time.perf_counter_ns()
        for i in range(n):
            lib.llama_decode(self.ctx, lib.llama_batch_get_one(one, 1))
            lib.llama_synchronize(self.ctx)
            one[0] = (i * 7919) % self.llm.n_vocab()
        elapsed = time.perf_counter_ns() - t0
        inside_ms = lib.llama_perf_context(self.ctx).t_eval_ms
        return n / (elapsed / 1e9), (elapsed / 1e6 - inside_ms) / n * 1e3

    def pp(self, n: int) -> float:
        lib = self.lib
        self._clear()
        tokens = [self.llm.token_bos()] + [(i * 7919) % self.llm.n_vocab() for i in range(1, n)]
        array = (lib.llama_token * n)(*tokens)
        t0 = time.perf_counter_ns()
        for i in range(0, n, self.batch):
            m = min(self.batch, n - i)
            chunk = (lib.llama_token * m).from_buffer(array, i * ctypes.sizeof(lib.llama_token))
            lib.llama_decode(self.ctx, lib.llama_batch_get_one(chunk, m))
        lib.llama_synchronize(self.ctx)
        return n / ((time.perf_counter_ns() - t0) / 1e9)

    def close(self) -> None:
        self.llm.close()


def tpw_rates(engine, sampler, db: Path, test, reps: int) -> tuple[float, float | None]:
    """Mean tokens/s of the test's main phase through MeasuredRun, and µs per token outside llama_decode."""
    from tpw_desktop.record.meta import RunOptions
    from tpw_desktop.run.session import MeasuredRun
    from tpw_desktop.store import SessionWriter, Store

    with SessionWriter(db) as writer:
        report = MeasuredRun(engine, sampler, RunOptions(repetitions=reps, idle_s=0, settle_s=0), recorder=writer).run(
            [test]
        )
    rates = [r.row.figures.tokens_per_s for r in report.results]
    outside = None
    if test.kind == "tg":
        with Store(db) as store:
            calls = store.calls(report.session_id)
            results = store.results(report.session_id)
        per_token = [
            (r.figures.seconds * 1e3 - c.perf.generation_ms) / r.figures.tokens * 1e3 for r, c in zip(results, calls)
        ]
        outside = statistics.median(per_token)
    return statistics.mean(rates), outside


def llama_bench_rate(binary: str, model: Path, settings, test: str, n: int, reps: int) -> float:
    ngl = 99 if settings.n_gpu_layers == -1 else settings.n_gpu_layers
    args = [
        binary,
        "-m",
        str(model),
        "-p",
        str(n if test == "pp" else 0),
        "-n",
        str(n if test == "tg" else 0),
        "-r",
        str(reps),
        "-t",
        str(settings.n_threads),
        "-fa",
        "1" if settings.flash_attn else "0",
        "-ngl",
        str(ngl),
        "-b",
        str(settings.n_batch),
        "-o",
        "json",
    ]
    done = subprocess.run(args, capture_output=True, text=True, timeout=900, check=True)
    [row] = json.loads(done.stdout)
    return float(row["avg_ts"])


def run(
    quick: bool = False, rounds: int | None = None, llama_bench: str | None = None, model: Path | None = None
) -> Result:
    import numpy as np

    from tpw_desktop.engine.llama_engine import load_engine
    from tpw_desktop.engine.workloads import TestSpec
    from tpw_desktop.power import PowerTrace, ReplaySource, Sampler
    from tpw_desktop.record.meta import EngineSettings

    rounds = rounds or (1 if quick else 6)
    n_tg, n_pp, reps = (16, 32, 1) if quick else (128, 512, 3)
    binary = find_llama_bench(llama_bench)
    tmp = Path(tempfile.mkdtemp())
    engine = load_engine(model, EngineSettings(n_ctx=max(1024, n_pp + 16)))
    settings = engine.settings
    bare = Bare(engine.facts.path, settings)
    trace = PowerTrace(np.array([0.0, 3600.0]), np.array([100.0, 100.0]), None, "flat.csv")
    rows: list[dict] = []
    with Sampler([ReplaySource(trace, time.monotonic_ns)], rate_hz=50) as sampler:
        tpw_rates(engine, sampler, tmp / "warm.db", TestSpec.tg(n_tg), 1)  # first calls are slow for every arm
        bare.tg(n_tg)
        for round_ in range(rounds):
            arms = ["tpw", "bare"] + (["llama-bench"] if binary else [])
            row: dict = {}
            for arm in arms if round_ % 2 == 0 else reversed(arms):
                if arm == "tpw":
                    row["tpw_tg"], row["tpw_outside_us"] = tpw_rates(
                        engine, sampler, tmp / f"r{round_}.db", TestSpec.tg(n_tg), reps
                    )
                    row["tpw_pp"] = tpw_rates(engine, sampler, tmp / f"r{round_}.db", TestSpec.pp(n_pp), reps)[0]
                elif arm == "bare":
                    tg = [bare.tg(n_tg) for _ in range(reps)]
                    row["bare_tg"] = statistics.mean(r for r, _ in tg)
                    row["bare_outside_us"] = statistics.median(o for _, o in tg)
                    row["bare_pp"] = statistics.mean(bare.pp(n_pp) for _ in range(reps))
                else:
                    row["llama_bench_tg"] = llama_bench_rate(binary, engine.facts.path, settings, "tg", n_tg, reps)
                    row["llama_bench_pp"] = llama_bench_rate(binary, engine.facts.path, settings, "pp", n_pp, reps)
            rows.append(row)
    bare.close()
    engine.close()
    scaling = outside_by_model_size(quick)
    return _result(rows, binary, scaling, settings, n_tg, n_pp, reps)


def outside_by_model_size(quick: bool) -> list[list]:
    """tpw's per-token time outside llama_decode for models of growing size: it should not grow."""
    from gguf_factory import write_tiny_llama

    from tpw_desktop.engine.llama_engine import Engine, load_engine
    from tpw_desktop.record.meta import EngineSettings

    tmp = Path(tempfile.mkdtemp())
    models = [
        ("tiny 64-wide, 2 layers", write_tiny_llama(tmp / "a.gguf")),
        ("small 256-wide, 4 layers", write_tiny_llama(tmp / "b.gguf", n_embd=256, n_layers=4, n_ff=512)),
    ]
    if not quick:
        models.append(("SmolLM2-135M Q4_1 (bundled)", None))
    rows = []
    for label, path in models:
        with Engine(path, EngineSettings(n_ctx=512)) if path else load_engine(None, EngineSettings(n_ctx=512)) as e:
            e.decode_only(8)
            gens = [e.decode_only(32 if quick else 128) for _ in range(1 if quick else 3)]
            outside = statistics.median((g.t_last_decode_ns - g.t_start_ns) / 1e6 - g.perf.generation_ms for g in gens)
            per_token_ms = statistics.median((g.t_last_decode_ns - g.t_start_ns) / 1e6 / g.decodes for g in gens)
            rows.append(
                [
                    label,
                    f"{e.facts.n_params / 1e6:.2f} M",
                    f"{per_token_ms:.3f} ms",
                    f"{outside / gens[0].decodes * 1e3:.1f} µs",
                ]
            )
    return rows


def _result(rows, binary, scaling, settings, n_tg, n_pp, reps) -> Result:
    res = Result("engine", "benchmarks/engine_speed.py", raw={"rounds": rows, "llama_bench": binary})
    tg_bare = median_ratio([(r["tpw_tg"], r["bare_tg"]) for r in rows])
    pp_bare = median_ratio([(r["tpw_pp"], r["bare_pp"]) for r in rows])
    outside = statistics.median(r["tpw_outside_us"] for r in rows)
    bare_outside = statistics.median(r["bare_outside_us"] for r in rows)
    res.figures += [
        Figure(
            f"tg{n_tg}: tpw's whole measured path / a bare llama_decode loop",
            "≥ 1.00x (the same engine)",
            f"{tg_bare:.3f}x (median of {len(rows)} rounds)",
            tg_bare >= 0.98,
            value=tg_bare,
            note="same process, same context; 3% either way is this machine's noise",
        ),
        Figure(f"pp{n_pp}: tpw / bare loop", "≥ 0.98x", f"{pp_bare:.3f}x", pp_bare >= 0.98, value=pp_bare),
        Figure(
            "time per token outside llama_decode (tpw's tg loop, events, sampler, writer)",
            f"< {OUTSIDE_GOAL_US:g} µs",
            f"{outside:.1f} µs (bare loop: {bare_outside:.1f} µs)",
            outside < OUTSIDE_GOAL_US,
            value=outside,
            note="llama.cpp's own t_eval against the window: no drift",
        ),
    ]
    if binary:
        tg_lb = median_ratio([(r["tpw_tg"], r["llama_bench_tg"]) for r in rows])
        pp_lb = median_ratio([(r["tpw_pp"], r["llama_bench_pp"]) for r in rows])
        res.figures += [
            Figure(
                f"tg{n_tg}: tpw / llama-bench (same llama.cpp, same flags)",
                f"≥ {TG_GOAL:.2f}x",
                f"{tg_lb:.3f}x",
                tg_lb >= TG_GOAL,
                value=tg_lb,
            ),
            Figure(f"pp{n_pp}: tpw / llama-bench", f"≥ {PP_GOAL:.2f}x", f"{pp_lb:.3f}x", pp_lb >= PP_GOAL, value=pp_lb),
        ]
    else:
        res.figures.append(
            Figure(
                "tg/pp against llama-bench",
                f"tg ≥ {TG_GOAL:.2f}x, pp ≥ {PP_GOAL:.2f}x",
                "not measured: no llama-bench found",
                None,
                note="build it from the vendored llama.cpp (README) and pass --llama-bench",
            )
        )
    columns = ["round", "tpw tg t/s", "bare tg t/s", "tpw pp t/s", "bare pp t/s"]
    columns += ["llama-bench tg", "llama-bench pp"] if binary else []
    res.tables.append(
        Table(
            f"Rounds (tg{n_tg}, pp{n_pp}, {reps} repetitions per arm, order alternating; "
            f"{settings.n_threads} threads, flash attention {'on' if settings.flash_attn else 'off'})",
            columns,
            [
                [
                    i + 1,
                    *(f"{r[k]:.1f}" for k in ("tpw_tg", "bare_tg", "tpw_pp", "bare_pp")),
                    *([f"{r['llama_bench_tg']:.1f}", f"{r['llama_bench_pp']:.1f}"] if binary else []),
                ]
                for i, r in enumerate(rows)
            ],
        )
    )
    res.tables.append(
        Table(
            "Time outside llama_decode per token against model size (it must not grow)",
            ["model", "params", "per token", "outside llama_decode"],
            scaling,
        )
    )
    return res


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--llama-bench", help="a llama-bench binary built from the same llama.cpp")
    parser.add_argument("--model", type=Path, help="GGUF file (default: the bundled SmolLM2)")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    result = run(args.quick, args.rounds, args.llama_bench, args.model)
    for f in result.figures:
        print(f"{f.name}: {f.measured} (goal {f.goal})")


if __name__ == "__main__":
    main()
