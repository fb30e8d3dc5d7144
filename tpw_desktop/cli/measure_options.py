"""The options `tpw bench` and `tpw sweep` share: what to run, how to load the model, how to measure.

One decorator adds them and hands the command one ``MeasureSpec``, so the
two commands can't drift apart (and defaults come from the core's
dataclasses, never retyped).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import click

from ..engine.workloads import DEFAULT_MAX_TOKENS, TestSpec, Workload, get_workload
from ..power import DEFAULT_RATE_HZ, DEFAULT_TDP_W
from ..record.meta import EngineSettings, RunOptions
from .common import err, parse_counts

DEFAULT_CTX = 4096

_OPTIONS = [
    click.option(
        "-p",
        "--n-prompt",
        default="512",
        show_default=True,
        help="Prompt-processing test sizes (pp), comma-separated; 0 skips.",
    ),
    click.option(
        "-n", "--n-gen", default="128", show_default=True, help="Generation test sizes (tg), comma-separated; 0 skips."
    ),
    click.option(
        "-w",
        "--workload",
        "workloads",
        multiple=True,
        help="A named workload (see `tpw workloads`); repeatable. Replaces the pp/tg tests.",
    ),
    click.option("--prompt", help="One prompt of your own, as the window's custom prompt. Replaces the pp/tg tests."),
    click.option(
        "--max-tokens",
        type=click.IntRange(1),
        default=DEFAULT_MAX_TOKENS,
        show_default=True,
        help="The most tokens answered to --prompt.",
    ),
    click.option(
        "--temperature",
        type=click.FloatRange(min=0),
        default=RunOptions.temperature,
        show_default=True,
        help="Sampling temperature of workloads and --prompt (0: greedy, the same tokens every time).",
    ),
    click.option(
        "--ngl",
        "n_gpu_layers",
        type=int,
        default=None,
        help="GPU layers (default: all when the build supports a GPU, else 0).",
    ),
    click.option(
        "--ctx",
        "n_ctx",
        type=click.IntRange(16),
        default=None,
        help=f"Context size (default: {DEFAULT_CTX}, or larger if the tests need it).",
    ),
    click.option("-b", "--batch", "n_batch", type=click.IntRange(1), default=EngineSettings.n_batch, show_default=True),
    click.option(
        "-t",
        "--threads",
        "n_threads",
        type=click.IntRange(1),
        default=None,
        help="CPU threads (default: physical cores, as llama-bench).",
    ),
    click.option("--flash-attn", type=click.Choice(["auto", "on", "off"]), default="auto", show_default=True),
    click.option("--seed", type=int, default=EngineSettings.seed, show_default=True),
    click.option("--no-warmup", is_flag=True, help="Skip the unrecorded warm-up run of each test."),
    click.option(
        "--power",
        "power_spec",
        default="auto",
        show_default=True,
        help="Power sources: auto, nvml[:0+1], rapl, estimate[:TDP], estimate-process[:TDP], replay:FILE; "
        "comma-separated.",
    ),
    click.option(
        "--tdp-w",
        type=click.FloatRange(min=1),
        default=DEFAULT_TDP_W,
        show_default=True,
        help="CPU TDP for the estimate source.",
    ),
    click.option(
        "--rate-hz",
        type=click.FloatRange(min=1, max=1000),
        default=DEFAULT_RATE_HZ,
        show_default=True,
        help="Power sampling rate.",
    ),
    click.option(
        "--idle-s",
        type=click.FloatRange(min=0),
        default=RunOptions.idle_s,
        show_default=True,
        help="Idle-power baseline measured before the tests; 0 skips.",
    ),
    click.option(
        "--settle-s",
        type=click.FloatRange(min=0),
        default=RunOptions.settle_s,
        show_default=True,
        help="Seconds left alone before the idle baseline (a GPU's power takes seconds to drop after work).",
    ),
    click.option(
        "--price",
        "price_per_kwh",
        type=click.FloatRange(min=0),
        default=None,
        help="Electricity price per kWh, for cost per 1M tokens.",
    ),
    click.option("--currency", default=RunOptions.currency, show_default=True),
    click.option("--no-text", is_flag=True, help="Record the sessions without prompt and output text."),
    click.option("-q", "--quiet", is_flag=True, help="No progress on stderr."),
]
_KEYS = (
    "n_prompt",
    "n_gen",
    "workloads",
    "prompt",
    "max_tokens",
    "temperature",
    "n_gpu_layers",
    "n_ctx",
    "n_batch",
    "n_threads",
    "flash_attn",
    "seed",
    "no_warmup",
    "power_spec",
    "tdp_w",
    "rate_hz",
    "idle_s",
    "settle_s",
    "price_per_kwh",
    "currency",
    "no_text",
    "quiet",
)


@dataclass(frozen=True)
class MeasureSpec:
    tests: list[TestSpec]
    settings: EngineSettings
    options: RunOptions  # repetitions as the command sets them
    power_spec: str
    tdp_w: float
    rate_hz: float
    quiet: bool


def measure_options(fn):
    """Add the shared options; the command receives ``spec: MeasureSpec`` (built with ``repetitions``)."""

    @functools.wraps(fn)
    def command(*args, **kwargs):
        shared = {key: kwargs.pop(key) for key in _KEYS}
        return fn(*args, shared=shared, **kwargs)

    for option in reversed(_OPTIONS):
        command = option(command)
    return command


def build_spec(shared: dict, repetitions: int, delay_s: float = 0.0) -> MeasureSpec:
    s = shared
    if s["prompt"] is not None:
        if s["workloads"]:
            raise click.UsageError("give --prompt or --workload, not both")
        if not s["prompt"].strip():
            raise click.UsageError("--prompt is empty")
        tests = [TestSpec.of(Workload.single_prompt(s["prompt"].strip(), s["max_tokens"]))]
    elif s["workloads"]:
        tests = [TestSpec.of(get_workload(name)) for name in s["workloads"]]
    else:
        tests = [TestSpec.pp(n) for n in parse_counts(s["n_prompt"], "-p")]
        tests += [TestSpec.tg(n) for n in parse_counts(s["n_gen"], "-n")]
    if not tests:
        raise click.UsageError("nothing to run: give -p or -n a size above 0, or a --workload")
    settings = EngineSettings(
        n_gpu_layers=s["n_gpu_layers"],
        n_ctx=context_size(tests, s["n_ctx"], s["quiet"]),
        n_batch=s["n_batch"],
        n_threads=s["n_threads"],
        flash_attn={"auto": None, "on": True, "off": False}[s["flash_attn"]],
        seed=s["seed"],
    )
    options = RunOptions(
        repetitions=repetitions,
        warmup=not s["no_warmup"],
        idle_s=s["idle_s"],
        settle_s=s["settle_s"],
        delay_s=delay_s,
        price_per_kwh=s["price_per_kwh"],
        currency=s["currency"],
        temperature=s["temperature"],
        store_text=not s["no_text"],
    )
    return MeasureSpec(tests, settings, options, s["power_spec"], s["tdp_w"], s["rate_hz"], s["quiet"])


def context_size(tests: list[TestSpec], n_ctx: int | None, quiet: bool) -> int:
    """The user's context if the pp/tg tests fit it (refused before loading if not), else one that fits."""
    needed = max((t.n_tokens for t in tests if t.workload is None), default=0)
    if n_ctx is not None:
        if needed > n_ctx:
            test = max((t for t in tests if t.workload is None), key=lambda t: t.n_tokens)
            raise click.UsageError(f"{test.name} needs {needed} tokens of context, but --ctx is {n_ctx}")
        return n_ctx
    if needed > DEFAULT_CTX and not quiet:
        err(f"note: the context is {needed} tokens (not {DEFAULT_CTX}) so the longest test fits")
    return max(DEFAULT_CTX, needed)
