"""Will the context fit? The KV cache's size from the GGUF header, against free memory.

llama.cpp allocates the whole KV cache when it creates the context: a
context of a million tokens asks a 135 M model for ~23 GB. Checking first
turns an out-of-memory kill (or a swapping machine) into one line with the
numbers.
"""

from __future__ import annotations

from .gguf_info import ModelFacts, format_size

KV_BYTES_PER_VALUE = 2  # llama.cpp's default cache type, f16
# Leave this share of free memory for llama.cpp's compute buffers and the rest of the machine.
MAX_SHARE_OF_FREE = 0.9


def _per_layer(value, n_layers: int) -> list[int]:
    """A head count, as one value for all layers or a list per layer."""
    if isinstance(value, list):
        return [int(v) for v in value]
    return [int(value)] * n_layers


def kv_cache_bytes(facts: ModelFacts, n_ctx: int) -> int | None:
    """Bytes of K and V for ``n_ctx`` tokens; None when the header lacks what is needed."""
    md, arch = facts.metadata, facts.architecture
    n_head = md.get(f"{arch}.attention.head_count")
    if not facts.n_layers or not facts.n_embd or not n_head:
        return None
    heads = _per_layer(n_head, facts.n_layers)
    kv_heads = _per_layer(md.get(f"{arch}.attention.head_count_kv", n_head), facts.n_layers)
    total = 0
    for h, kv in zip(heads, kv_heads):
        if not h:
            continue
        key = int(md.get(f"{arch}.attention.key_length", facts.n_embd // h))
        value = int(md.get(f"{arch}.attention.value_length", facts.n_embd // h))
        total += kv * (key + value)
    return total * n_ctx * KV_BYTES_PER_VALUE


def memory_problem(kv_bytes: int | None, free_bytes: int | None, where: str, n_ctx: int) -> str | None:
    """Why a context of ``n_ctx`` tokens won't fit, or None when it does (or can't be told)."""
    if kv_bytes is None or free_bytes is None or kv_bytes <= MAX_SHARE_OF_FREE * free_bytes:
        return None
    usable = MAX_SHARE_OF_FREE * free_bytes
    return (
        f"a context of {n_ctx:,} tokens needs a {format_size(kv_bytes)} KV cache; {format_size(free_bytes)} of "
        f"{where} is free, of which tpw uses at most {MAX_SHARE_OF_FREE:.0%} ({format_size(usable)}: llama.cpp's "
        "compute buffers and the rest of the machine need the remainder): lower the context size (--ctx)"
    )


def weights_warning(file_bytes: int, ram_bytes: int) -> str | None:
    """Why a model file larger than the machine's memory will be slow to load and to run, or None.

    llama.cpp maps the file, so it loads; but pages are read from disk again and again, and the
    figures measure the disk as much as the model.
    """
    if file_bytes <= ram_bytes:
        return None
    return (
        f"the file is {format_size(file_bytes)} and this machine has {format_size(ram_bytes)} of memory: "
        "llama.cpp reads the part that doesn't fit from disk for every token, so loading is slow and "
        "speed and energy figures measure the disk too"
    )


def total_ram_bytes() -> int:
    import psutil

    return int(psutil.virtual_memory().total)


def free_ram_bytes() -> int:
    import psutil

    return int(psutil.virtual_memory().available)


def free_gpu_bytes(nvml_module=None) -> int | None:
    """Free memory of GPU 0 through NVML, or None when there is no NVML to ask."""
    try:
        if nvml_module is None:
            import pynvml as nvml_module
        nvml_module.nvmlInit()
    except Exception:  # noqa: BLE001 - no driver, no library: nothing to check against
        return None
    try:
        return int(nvml_module.nvmlDeviceGetMemoryInfo(nvml_module.nvmlDeviceGetHandleByIndex(0)).free)
    except Exception:  # noqa: BLE001
        return None
    finally:
        try:
            nvml_module.nvmlShutdown()
        except Exception:  # noqa: BLE001
            pass
