"""The one place that reaches into llama-cpp-python's private attributes.

The token loop calls llama.cpp's C API with the raw context and vocabulary
pointers, which llama-cpp-python keeps behind private attributes
(``Llama._ctx.ctx``, ``Llama._model.vocab``). Those names change between
releases: when they do, a model fails to load with one line naming the
version, instead of an AttributeError in the middle of a run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import TpwError


@dataclass(frozen=True)
class LlamaHandles:
    context: Any  # llama_context_p: what llama_decode and the perf counters take
    vocab: Any  # llama_vocab_p: what llama_token_to_piece takes
    token_text: Any  # token id -> its text, for the chat template's BOS and EOS


def llama_handles(llm: Any) -> LlamaHandles:
    """The raw handles of a loaded ``llama_cpp.Llama``, or a TpwError saying this version lacks them."""
    try:
        model = llm._model
        return LlamaHandles(llm._ctx.ctx, model.vocab, model.token_get_text)
    except AttributeError as exc:
        import llama_cpp

        raise TpwError(
            f"llama-cpp-python {llama_cpp.__version__} does not have the handles tpw's token loop uses ({exc}): "
            "install the version packaging/constraints.txt names"
        ) from None
