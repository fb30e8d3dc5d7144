"""Write tiny llama-architecture GGUF models for tests.

Random F32 weights and a SentencePiece vocabulary of byte tokens: a few
hundred KB, built in milliseconds, loaded and run by the real llama.cpp.
The tokens it generates are meaningless; the timing and the code paths are real.
"""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np

_WORDS = ["▁the", "▁a", "▁and", "▁of", "▁to", "▁in", "▁is", "▁it", "▁that", "▁energy", "▁token", "▁joule"]


def _vocab() -> tuple[list[str], list[float], list[int]]:
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{i:02X}>" for i in range(256)] + _WORDS
    scores = [0.0, 0.0, 0.0] + [0.0] * 256 + [-float(i) for i in range(len(_WORDS))]
    types = (
        [gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL]
        + [gguf.TokenType.BYTE] * 256
        + [gguf.TokenType.NORMAL] * len(_WORDS)
    )
    return tokens, scores, [int(t) for t in types]


def write_tiny_llama(
    path: Path,
    *,
    n_embd: int = 64,
    n_layers: int = 2,
    n_head: int = 4,
    n_ff: int = 128,
    n_ctx: int = 2048,
    seed: int = 0,
    name: str = "tiny-test-llama",
    chat_template: str | None = None,
    with_file_type: bool = True,
    f16: bool = False,
) -> Path:
    """``f16`` stores the matrices as F16 (norms stay F32), as a converted model would be."""
    tokens, scores, types = _vocab()
    n_vocab = len(tokens)
    rng = np.random.default_rng(seed)
    dtype = np.float16 if f16 else np.float32

    def weight(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape, dtype=np.float32) * 0.02).astype(dtype)

    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name(name)
    w.add_context_length(n_ctx)
    w.add_embedding_length(n_embd)
    w.add_block_count(n_layers)
    w.add_feed_forward_length(n_ff)
    w.add_head_count(n_head)
    w.add_head_count_kv(n_head)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_dimension_count(n_embd // n_head)
    w.add_vocab_size(n_vocab)
    if with_file_type:
        w.add_file_type(gguf.LlamaFileType.MOSTLY_F16 if f16 else gguf.LlamaFileType.ALL_F32)
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    w.add_add_bos_token(True)
    if chat_template:
        w.add_chat_template(chat_template)

    w.add_tensor("token_embd.weight", weight(n_vocab, n_embd))
    w.add_tensor("output_norm.weight", np.ones(n_embd, dtype=np.float32))
    w.add_tensor("output.weight", weight(n_vocab, n_embd))
    for i in range(n_layers):
        w.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(n_embd, dtype=np.float32))
        for name_ in ("attn_q", "attn_k", "attn_v", "attn_output"):
            w.add_tensor(f"blk.{i}.{name_}.weight", weight(n_embd, n_embd))
        w.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(n_embd, dtype=np.float32))
        w.add_tensor(f"blk.{i}.ffn_gate.weight", weight(n_ff, n_embd))
        w.add_tensor(f"blk.{i}.ffn_up.weight", weight(n_ff, n_embd))
        w.add_tensor(f"blk.{i}.ffn_down.weight", weight(n_embd, n_ff))

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def expected_params(n_embd: int = 64, n_layers: int = 2, n_ff: int = 128) -> int:
    n_vocab = len(_vocab()[0])
    per_layer = 2 * n_embd + 4 * n_embd * n_embd + 3 * n_ff * n_embd
    return 2 * n_vocab * n_embd + n_embd + n_layers * per_layer
