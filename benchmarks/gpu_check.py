"""GPU check: does integrating NVML's power reading agree with its energy counter?

Runs llama-bench-style tests on the GPU with NVML sampling, and for every
measured window prints the counter energy (what tpw reports), the
trapezoid integral of the instantaneous power over the same window, and
their ratio. Writes everything, with the GPU, driver, power limit and model
shape, to a JSON file.

Without --model it writes a random-weights llama GGUF sized to keep a
big GPU busy (quantized with llama.cpp), since machines without network
can't download one: the tokens are meaningless, the power and timing real.

    python benchmarks/gpu_check.py [--model M.gguf] [--out results.json] [--power nvml:0]
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))


def make_model(folder: Path, n_embd: int, n_layers: int, n_ff: int, quant: str) -> tuple[Path, dict]:
    import llama_cpp
    from gguf_factory import write_tiny_llama

    f16 = folder / f"random-llama-{n_embd}x{n_layers}-f16.gguf"
    t0 = time.monotonic()
    write_tiny_llama(
        f16,
        n_embd=n_embd,
        n_layers=n_layers,
        n_head=n_embd // 128,
        n_ff=n_ff,
        n_ctx=8192,
        f16=True,
        name="random-weights llama for the GPU check",
    )
    out = folder / f"random-llama-{n_embd}x{n_layers}-{quant}.gguf"
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{quant}")
    if llama_cpp.llama_model_quantize(str(f16).encode(), str(out).encode(), params) != 0:
        raise SystemExit(f"quantizing to {quant} failed")
    f16.unlink()
    shape = {
        "n_embd": n_embd,
        "n_layers": n_layers,
        "n_ff": n_ff,
        "quantization": quant,
        "generated_in_s": round(time.monotonic() - t0, 1),
    }
    return out, shape


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path)
    parser.add_argument("--out", type=Path, default=Path("gpu-check.json"))
    parser.add_argument("--power", default="nvml:0")
    parser.add_argument("--rate-hz", type=float, default=50.0)
    parser.add_argument("-p", "--n-prompt", type=int, nargs="+", default=[512, 4096])
    parser.add_argument("-n", "--n-gen", type=int, nargs="+", default=[128, 1024])
    parser.add_argument("-r", "--repetitions", type=int, default=5)
    parser.add_argument("--idle-s", type=float, default=3.0)
    parser.add_argument(
        "--settle-s", type=float, default=5.0, help="left alone before idle (GPUs stay in a high power state)"
    )
    parser.add_argument(
        "--embd", type=int, default=2560, help="generated model: embedding width (~1.9 B params with 24 layers)"
    )
    parser.add_argument("--layers", type=int, default=24, help="generated model: layers")
    parser.add_argument("--quant", default="Q4_K_M", help="generated model: llama.cpp file type")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp"))
    args = parser.parse_args()

    import llama_cpp

    from tpw_desktop import serialize
    from tpw_desktop.engine.llama_engine import load_engine
    from tpw_desktop.engine.workloads import TestSpec
    from tpw_desktop.power import Sampler, open_sources, source_facts
    from tpw_desktop.record import fields
    from tpw_desktop.record.meta import EngineSettings, RunOptions
    from tpw_desktop.run.session import MeasuredRun

    result: dict = {
        "host": platform.node(),
        "gpu_offload": bool(llama_cpp.llama_supports_gpu_offload()),
        "llama_cpp_python": llama_cpp.__version__,
    }
    print(f"llama-cpp-python {llama_cpp.__version__}, GPU offload: {result['gpu_offload']}", flush=True)
    model, shape = args.model, None
    if model is None:
        model, shape = make_model(args.workdir, args.embd, args.layers, args.embd * 8 // 3 // 256 * 256, args.quant)
        print(f"generated {model} ({model.stat().st_size / 2**30:.2f} GiB) {shape}", flush=True)
    result["model_shape"] = shape

    sources = open_sources(args.power)
    result["power_sources"] = [source_facts(s) for s in sources]
    for s in sources:
        print(f"power: {s.name} [{s.method}] {s.measures} {s.info()}", flush=True)
    n_ctx = max(args.n_prompt + args.n_gen) + 64
    tests = [TestSpec.pp(n) for n in args.n_prompt] + [TestSpec.tg(n) for n in args.n_gen]
    with Sampler(sources, rate_hz=args.rate_hz) as sampler, load_engine(model, EngineSettings(n_ctx=n_ctx)) as engine:
        result["model"] = engine.facts.ref()
        result["settings"] = engine.settings
        result["load_ms"] = engine.load_ms
        result["telemetry_before"] = [s.telemetry() for s in sources if hasattr(s, "telemetry")]
        options = RunOptions(repetitions=args.repetitions, idle_s=args.idle_s, settle_s=args.settle_s)
        report = MeasuredRun(engine, sampler, options).run(tests)
        result["telemetry_after"] = [s.telemetry() for s in sources if hasattr(s, "telemetry")]
        windows = []
        print(f"\n{'test':8} {'rep':>3} {'s':>7} {'counter J':>10} {'integrated J':>13} {'ratio':>6} {'upd':>4}")
        for res in (r.row for r in report.results):
            for row in sampler.compare_methods(res.t_start_ns, res.t_end_ns):
                row.update(
                    test=res.test,
                    repetition=res.repetition,
                    phase=res.phase,
                    tokens=res.figures.tokens,
                    tokens_per_s=res.figures.tokens_per_s,
                    tokens_per_j=res.figures.tokens_per_j,
                )
                windows.append(row)
                print(
                    f"{res.test:8} {res.repetition:3} {row['seconds']:7.3f} {_num(row['counter_j'], 10, 2)} "
                    f"{row['integrated_power_j']:13.2f} {_num(row['ratio'], 6, 3)} {row['counter_updates']:4}",
                    flush=True,
                )
        result["windows"] = windows
        result["summary"] = fields.rows(report.summaries, json_text=False)
        result["idle"] = report.idle
        result["idle_reason"] = report.idle_reason
        result["sampler"] = report.sampler
    args.out.write_text(serialize.dumps(result, indent=2))
    print(f"\nwrote {args.out}")


def _num(value, width: int, digits: int) -> str:
    return f"{value:{width}.{digits}f}" if value is not None else "n/a".rjust(width)


if __name__ == "__main__":
    main()
