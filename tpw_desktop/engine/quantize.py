"""Make a quantized variant of a GGUF with llama.cpp's own quantizer (``llama_model_quantize``).

Progress comes from llama.cpp's log ("[ 12/ 30] blk.3.attn_q.weight ..."),
read through tpw's log callback. Quantizing a file that is already
quantized loses quality twice, so it needs ``allow_requantize``; an
importance-matrix type (IQ*) or an unknown name is refused with the list
of what can be made.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import TpwError
from ..paths import user_models_dir
from .gguf_info import ModelFacts, format_size, read_model_facts
from .llama_log import LLAMA_LOG

# What llama.cpp can make without an importance matrix, by the names people use.
TYPES = (
    "Q4_0",
    "Q4_1",
    "Q5_0",
    "Q5_1",
    "Q8_0",
    "Q2_K",
    "Q3_K_S",
    "Q3_K_M",
    "Q3_K_L",
    "Q4_K_S",
    "Q4_K_M",
    "Q5_K_S",
    "Q5_K_M",
    "Q6_K",
    "F16",
    "BF16",
)
UNQUANTIZED = ("F32", "F16", "BF16")
_PROGRESS = re.compile(r"\[\s*(\d+)\s*/\s*(\d+)\s*\]")


@dataclass(frozen=True)
class Quantized:
    source: ModelFacts
    output: ModelFacts
    seconds: float


def check_type(name: str) -> str:
    """The type's canonical name, or a TpwError saying what can be made (no llama.cpp needed)."""
    upper = name.upper()
    if upper.startswith("IQ") or upper.startswith("TQ"):
        raise TpwError(
            f"--type {name}: {upper} needs an importance matrix (llama-imatrix), which tpw doesn't make; "
            f"choose from {', '.join(TYPES)}"
        )
    if upper not in TYPES:
        raise TpwError(f"--type {name}: not a quantization llama.cpp can make here; choose from {', '.join(TYPES)}")
    return upper


def ftype(name: str) -> int:
    """llama.cpp's file type constant for a quantization name (case-insensitive)."""
    import llama_cpp

    return getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{check_type(name)}")


def default_output(source: Path, qtype: str, models_dir: Path | None = None) -> Path:
    """``model-F16.gguf`` -> ``model-Q4_K_M.gguf``; otherwise the type is appended.

    Beside the source, unless its folder belongs to an installed package (the bundled model's) or
    can't be written: then in the user's models folder, never inside site-packages.
    """
    stem = source.stem
    for known in (*TYPES, "F32"):
        if stem.upper().endswith(f"-{known}") or stem.upper().endswith(f".{known}"):
            stem = stem[: -len(known) - 1]
            break
    name = f"{stem}-{qtype.upper()}.gguf"
    folder = source.parent
    if _installed_or_read_only(folder):
        folder = models_dir or user_models_dir()
    return folder / name


def _installed_or_read_only(folder: Path) -> bool:
    parts = set(folder.resolve().parts) if folder.exists() else set(folder.parts)
    return bool(parts & {"site-packages", "dist-packages"}) or (folder.is_dir() and not os.access(folder, os.W_OK))


def output_path(source: Path, qtype: str, output: str | Path | None) -> Path:
    """Where a quantization goes: ``output``, or ``default_output``."""
    return Path(output) if output is not None else default_output(source, qtype)


def partial_path(out: Path) -> Path:
    """Where llama.cpp writes while it quantizes: renamed to ``out`` only once the file is whole."""
    return out.with_name(f".{out.name}.part")


def is_quantized(facts: ModelFacts) -> bool:
    return facts.quantization.upper() not in UNQUANTIZED


def quantize(
    source: str | Path,
    qtype: str,
    output: str | Path | None = None,
    *,
    allow_requantize: bool = False,
    threads: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> Quantized:
    """Write ``output`` (default: ``default_output``); never overwrites an existing file, and a file under
    that name is always whole: llama.cpp writes a partial file that is renamed once it is done."""
    import llama_cpp

    facts = read_model_facts(source)
    file_type = ftype(qtype)
    out = output_path(facts.path, qtype, output)
    if out.parent == user_models_dir():
        out.parent.mkdir(parents=True, exist_ok=True)
    if out.exists():
        raise TpwError(f"{out}: already exists (tpw doesn't overwrite a model; choose another name)")
    if not out.parent.is_dir():
        raise TpwError(f"{out}: the folder {out.parent} does not exist")
    if not os.access(out.parent, os.W_OK):
        raise TpwError(f"{out}: the folder {out.parent} is read-only; choose another place (-o)")
    if is_quantized(facts) and not allow_requantize:
        raise TpwError(
            f"{facts.path}: already quantized ({facts.quantization}); quantizing it again to "
            f"{qtype.upper()} loses quality twice. Start from an F16/F32 file, or confirm "
            "(--allow-requantize)"
        )
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = file_type
    params.nthread = threads
    params.allow_requantize = allow_requantize
    LLAMA_LOG.install()
    mark = LLAMA_LOG.mark()
    listener = _ProgressReader(progress) if progress else None
    if listener:
        LLAMA_LOG.listeners.append(listener)
    started = time.monotonic()
    partial = partial_path(out)
    try:
        code = llama_cpp.llama_model_quantize(str(facts.path).encode(), str(partial).encode(), params)
        if code == 0:
            os.replace(partial, out)
    finally:
        if listener:
            LLAMA_LOG.listeners.remove(listener)
        partial.unlink(missing_ok=True)
    if code != 0:
        said = LLAMA_LOG.problems_since(mark)
        raise TpwError(
            f"{facts.path}: llama.cpp could not quantize it to {qtype.upper()}"
            + (f": {said[-1].strip()}" if said else f" (code {code})")
        )
    return Quantized(facts, read_model_facts(out), time.monotonic() - started)


class _ProgressReader:
    """Turns llama.cpp's "[ i/ n]" tensor lines into progress(i, n) calls."""

    def __init__(self, progress: Callable[[int, int], None]):
        self.progress = progress

    def __call__(self, line: str) -> None:
        match = _PROGRESS.search(line)
        if match:
            self.progress(int(match.group(1)), int(match.group(2)))


def describe(result: Quantized) -> str:
    s, o = result.source, result.output
    return (
        f"{o.path}: {s.quantization} -> {o.quantization}, {format_size(s.size_bytes)} -> "
        f"{format_size(o.size_bytes)} in {result.seconds:.1f} s"
    )
