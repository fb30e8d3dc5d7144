"""Is `tpw bench`'s generation rate the engine's, or does our measuring slow it down?

In one process, on the same model and settings, alternate (ABBA, so slow
drift of a shared machine cancels):
  * tpw's own path: MeasuredRun (sampler thread running, token events,
    energy windows) on llama-bench's tg test;
  * a bare llama-cpp-python loop: reset, generate() from BOS, count tokens;
and print both rates, and the median of the per-round ratios (robust to a
noisy neighbour slowing one block).

On a shared machine those rates drift by +-20% within minutes, so the script
also measures what doesn't drift: the time per token spent outside
llama_decode inside the generation window, for tpw's engine and for the bare
loop, alternating. That is exactly what tpw adds. With --llama-bench PATH (or
llama-bench on PATH) also run llama-bench's tg test on the same file.

    .venv/bin/python benchmarks/tg_vs_bare.py [--model M.gguf] [-n 128] [-r 5] [--rounds 3]
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import time

from tpw_desktop.engine.llama_engine import EngineSettings, load_engine
from tpw_desktop.engine.workloads import TestSpec
from tpw_desktop.power import Sampler, open_sources
from tpw_desktop.session import MeasuredRun, RunOptions


def bare_rates(settings: EngineSettings, model: str, n_gen: int, reps: int) -> list[float]:
    from llama_cpp import Llama

    llm = Llama(model_path=model, n_gpu_layers=settings.n_gpu_layers, n_ctx=settings.n_ctx, n_batch=settings.n_batch,
                n_ubatch=settings.n_ubatch, n_threads=settings.n_threads, n_threads_batch=settings.n_threads,
                flash_attn=settings.flash_attn, seed=settings.seed, verbose=False)
    bos = llm.token_bos()
    rates = []
    for rep in range(reps + 1):  # the first is a warm-up
        llm.reset()
        n = 0
        t0 = time.monotonic_ns()
        for _ in llm.generate([bos], temp=0.0):
            n += 1
            if n == n_gen:
                break
        t1 = time.monotonic_ns()
        if rep:
            rates.append(n / ((t1 - t0) / 1e9))
    llm.close()
    return rates


def tpw_rates(engine, n_gen: int, reps: int) -> list[float]:
    with Sampler(open_sources("auto")) as sampler:
        report = MeasuredRun(engine, sampler, RunOptions(repetitions=reps, idle_s=0)).run([TestSpec.tg(n_gen)])
    return [r.figures.tokens_per_s for r in report.results]


def llama_bench_command(binary: str, model: str, settings: EngineSettings, n_gen: int, reps: int) -> list[str]:
    ngl = 99 if settings.n_gpu_layers == -1 else settings.n_gpu_layers
    return [binary, "-m", model, "-p", "0", "-n", str(n_gen), "-r", str(reps), "-t", str(settings.n_threads),
            "-fa", "1" if settings.flash_attn else "0", "-ngl", str(ngl), "-o", "json"]


def llama_bench(binary: str, model: str, settings: EngineSettings, n_gen: int, reps: int) -> dict:
    cmd = llama_bench_command(binary, model, settings, n_gen, reps)
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=True)
    [row] = [r for r in json.loads(done.stdout) if r["n_gen"] == n_gen]
    return {"mean": row["avg_ts"], "sd": row["stddev_ts"]}


def outside_decode_us(engine, settings: EngineSettings, model: str, n_gen: int, rounds: int) -> tuple[float, float]:
    """Median microseconds per token not spent in llama_decode, tpw's engine vs a bare loop."""
    import llama_cpp._internals as internals
    from llama_cpp import Llama

    decode_ns = [0]
    original = internals.LlamaContext.decode

    def timed(ctx, batch):
        t = time.perf_counter_ns()
        original(ctx, batch)
        decode_ns[0] += time.perf_counter_ns() - t

    internals.LlamaContext.decode = timed
    try:
        bare = Llama(model_path=model, n_gpu_layers=settings.n_gpu_layers, n_ctx=settings.n_ctx,
                     n_batch=settings.n_batch, n_ubatch=settings.n_ubatch, n_threads=settings.n_threads,
                     n_threads_batch=settings.n_threads, flash_attn=settings.flash_attn, seed=settings.seed,
                     verbose=False)

        def ours() -> float:
            decode_ns[0] = 0
            gen = engine.generate([engine.token_bos()], n_gen, ignore_eos=True)
            return (gen.events[-1].t_ns - gen.t_start_ns - decode_ns[0]) / n_gen / 1e3

        def theirs() -> float:
            bare.reset()
            decode_ns[0], n = 0, 0
            t0 = time.monotonic_ns()
            for _ in bare.generate([bare.token_bos()], temp=0.0):
                n += 1
                if n == n_gen:
                    break
            return (time.monotonic_ns() - t0 - decode_ns[0]) / n_gen / 1e3

        ours(), theirs()
        a, b = [], []
        for _ in range(rounds):
            a.append(ours())
            b.append(theirs())
        bare.close()
        return statistics.median(a), statistics.median(b)
    finally:
        internals.LlamaContext.decode = original


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="GGUF file (default: the bundled SmolLM2)")
    parser.add_argument("-n", "--n-gen", type=int, default=128)
    parser.add_argument("-r", "--repetitions", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=10, help="alternations of the two paths")
    parser.add_argument("--llama-bench", default=shutil.which("llama-bench"))
    args = parser.parse_args()

    engine = load_engine(args.model, EngineSettings(n_ctx=max(512, args.n_gen + 16)))
    settings, model = engine.settings, str(engine.facts.path)
    print(f"model {engine.facts.file_name}; settings {settings}; llama-cpp-python {engine.build.llama_cpp_python_version}")
    arms = {"tpw": lambda: tpw_rates(engine, args.n_gen, args.repetitions),
            "bare": lambda: bare_rates(settings, model, args.n_gen, args.repetitions)}
    if args.llama_bench:
        arms["llama-bench"] = lambda: [llama_bench(args.llama_bench, model, settings, args.n_gen, args.repetitions)["mean"]]
    print("warm-up round (not counted): the first timed runs in a fresh process are slow for every path")
    for name in arms:
        arms[name]()
    rates: dict[str, list[float]] = {name: [] for name in arms}
    ratios: dict[str, list[float]] = {name: [] for name in arms if name != "tpw"}
    for round_ in range(args.rounds):
        order = list(arms) if round_ % 2 == 0 else list(reversed(arms))
        block = {name: statistics.mean(arms[name]()) for name in order}
        for name in arms:
            rates[name].append(block[name])
        for name in ratios:
            ratios[name].append(block["tpw"] / block[name])
        print(f"round {round_ + 1:2}: " + ", ".join(f"{n} {block[n]:7.2f} t/s" for n in arms)
              + "; tpw/" + ", tpw/".join(f"{n} {ratios[n][-1]:.3f}" for n in ratios))
    ours_us, bare_us = outside_decode_us(engine, settings, model, args.n_gen, 10)
    engine.close()
    print(f"\ntg{args.n_gen}: {args.rounds} rounds of {args.repetitions} repetitions per path, order alternating")
    for name, values in rates.items():
        print(f"  {name:12}: {statistics.mean(values):8.2f} t/s mean of rounds (sd {statistics.stdev(values):.2f})")
    for name, values in ratios.items():
        print(f"  tpw / {name:12}: median {statistics.median(values):.3f}, "
              f"ratio of means {statistics.mean(rates['tpw']) / statistics.mean(rates[name]):.3f}")
    token_us = 1e6 / statistics.mean(rates["bare"])
    print(f"  time per token outside llama_decode (drift-free): tpw {ours_us:.1f} us, bare {bare_us:.1f} us: "
          f"tpw adds {ours_us - bare_us:.1f} us = {(ours_us - bare_us) / token_us * 100:.2f}% of a {token_us:.0f} us token")
    if not args.llama_bench:
        print("  llama-bench: not found (pass --llama-bench PATH to compare)")
    else:
        print("  llama-bench command: " + " ".join(llama_bench_command(args.llama_bench, model, settings, args.n_gen,
                                                                         args.repetitions)))


if __name__ == "__main__":
    main()
