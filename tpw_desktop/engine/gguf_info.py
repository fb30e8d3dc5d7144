"""Read a GGUF file's header without loading the model.

``gguf.GGUFReader`` builds Python objects for every vocabulary entry and
takes ~5 s on a 100 MB model; listing a folder of models or validating a
file before loading must be instant. This scanner walks the header with
``struct`` over a memory map, skips arrays it doesn't need, and checks that
the tensor data the header promises is really in the file, which is how a
truncated download is caught before llama.cpp sees it.
"""

from __future__ import annotations

import mmap
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gguf

from ..errors import ModelFileError
from ..peers.text import plain
from ..record.meta import ModelRef

GGUF_MAGIC = b"GGUF"
DEFAULT_ALIGNMENT = 32
# The architectures gguf-py (llama.cpp's own Python package) names: a file of
# any other can't be loaded, and `tpw models` should say so up front.
KNOWN_ARCHITECTURES = frozenset(gguf.MODEL_ARCH_NAMES.values())

# Scalar GGUF value types -> struct format (little-endian).
_SCALAR_FORMATS = {
    gguf.GGUFValueType.UINT8: "<B",
    gguf.GGUFValueType.INT8: "<b",
    gguf.GGUFValueType.UINT16: "<H",
    gguf.GGUFValueType.INT16: "<h",
    gguf.GGUFValueType.UINT32: "<I",
    gguf.GGUFValueType.INT32: "<i",
    gguf.GGUFValueType.FLOAT32: "<f",
    gguf.GGUFValueType.BOOL: "<?",
    gguf.GGUFValueType.UINT64: "<Q",
    gguf.GGUFValueType.INT64: "<q",
    gguf.GGUFValueType.FLOAT64: "<d",
}
_ARRAYS_KEPT = 16  # arrays longer than this are counted, not kept


class _Truncated(Exception):
    pass


class _Cursor:
    """Sequential little-endian reads over a buffer, raising on overrun."""

    def __init__(self, buf):
        self.buf = buf
        self.pos = 0

    def unpack(self, fmt: str) -> Any:
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.buf):
            raise _Truncated
        value = struct.unpack_from(fmt, self.buf, self.pos)[0]
        self.pos += size
        return value

    def string(self) -> str:
        n = self.unpack("<Q")
        if self.pos + n > len(self.buf):
            raise _Truncated
        raw = self.buf[self.pos : self.pos + n]
        self.pos += n
        return bytes(raw).decode("utf-8", errors="replace")

    def skip_string(self) -> None:
        n = self.unpack("<Q")
        self.pos += n
        if self.pos > len(self.buf):
            raise _Truncated

    def value(self, vtype: int) -> Any:
        vtype = gguf.GGUFValueType(vtype)
        if vtype == gguf.GGUFValueType.STRING:
            return self.string()
        if vtype == gguf.GGUFValueType.ARRAY:
            item_type = gguf.GGUFValueType(self.unpack("<I"))
            count = self.unpack("<Q")
            if count <= _ARRAYS_KEPT:
                return [self.value(item_type) for _ in range(count)]
            if item_type == gguf.GGUFValueType.STRING:
                for _ in range(count):
                    self.skip_string()
            elif item_type in _SCALAR_FORMATS:
                self.pos += count * struct.calcsize(_SCALAR_FORMATS[item_type])
                if self.pos > len(self.buf):
                    raise _Truncated
            else:
                for _ in range(count):
                    self.value(item_type)
            return _SkippedArray(count)
        return self.unpack(_SCALAR_FORMATS[vtype])


@dataclass(frozen=True)
class _SkippedArray:
    """A long array (a vocabulary, merges) whose items we didn't keep."""

    length: int


@dataclass(frozen=True)
class ModelFacts:
    """What a reader of a result needs to know about the model file."""

    path: Path
    size_bytes: int
    gguf_version: int
    architecture: str
    name: str | None
    n_params: int
    quantization: str  # llama.cpp's file type, e.g. "Q4_1", "Q8_0", "F16"
    n_tensors: int
    n_layers: int | None
    n_ctx_train: int | None
    n_embd: int | None
    n_vocab: int | None
    has_chat_template: bool
    metadata: dict[str, Any] = field(repr=False, compare=False)

    @property
    def file_name(self) -> str:
        return self.path.name

    def ref(self) -> ModelRef:
        """The model as a session records it."""
        return ModelRef(
            path=str(self.path),
            file_name=self.file_name,
            name=self.name,
            architecture=self.architecture,
            quantization=self.quantization,
            n_params=self.n_params,
            n_layers=self.n_layers,
            n_ctx_train=self.n_ctx_train,
            size_bytes=self.size_bytes,
        )


def _check_path(path: Path) -> None:
    if not path.exists():
        raise ModelFileError(path, "no such file")
    if path.is_dir():
        raise ModelFileError(path, "is a directory, not a GGUF model file")
    if not os.access(path, os.R_OK):
        raise ModelFileError(path, "permission denied")


def _show_bytes(data: bytes) -> str:
    """Text as text, anything else as hex: never a raw Python byte string."""
    if all(32 <= b < 127 for b in data):
        return repr(data.decode("ascii"))
    return "bytes " + data.hex(" ")


def read_model_facts(path: str | os.PathLike) -> ModelFacts:
    """Validate a GGUF file and read its facts; raise ModelFileError if it's unusable."""
    path = Path(path).expanduser()
    _check_path(path)
    size = path.stat().st_size
    if size < 4:
        raise ModelFileError(path, f"not a GGUF file ({size} bytes)")
    with open(path, "rb") as f:
        magic = f.read(4)
        if magic != GGUF_MAGIC:
            raise ModelFileError(path, f"not a GGUF file (it starts with {_show_bytes(magic)}, not 'GGUF')")
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            try:
                return _scan(path, buf, size)
            except _Truncated:
                raise ModelFileError(path, "truncated GGUF: the header ends before it should") from None
            except (ValueError, KeyError) as exc:
                raise ModelFileError(path, f"corrupt GGUF header ({exc})") from None


def _scan(path: Path, buf, size: int) -> ModelFacts:
    cur = _Cursor(buf)
    cur.pos = 4
    version = cur.unpack("<I")
    if version not in (2, 3):
        raise ValueError(f"unsupported GGUF version {version}")
    n_tensors = cur.unpack("<Q")
    n_kv = cur.unpack("<Q")
    metadata: dict[str, Any] = {}
    for _ in range(n_kv):
        key = cur.string()
        metadata[key] = cur.value(cur.unpack("<I"))

    n_params = 0
    data_end = 0
    type_counts: dict[int, int] = {}
    for _ in range(n_tensors):
        cur.skip_string()
        n_dims = cur.unpack("<I")
        n_elements = 1
        for _ in range(n_dims):
            n_elements *= cur.unpack("<Q")
        ggml_type = cur.unpack("<I")
        offset = cur.unpack("<Q")
        block_size, type_size = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType(ggml_type)]
        n_bytes = n_elements // block_size * type_size
        n_params += n_elements
        data_end = max(data_end, offset + n_bytes)
        type_counts[ggml_type] = type_counts.get(ggml_type, 0) + n_elements

    alignment = int(metadata.get("general.alignment", DEFAULT_ALIGNMENT))
    data_start = -(-cur.pos // alignment) * alignment
    if data_start + data_end > size:
        raise ModelFileError(
            path,
            f"truncated GGUF: tensor data ends at byte {data_start + data_end:,} but the file has {size:,} bytes",
        )

    arch = str(metadata.get("general.architecture", "unknown"))
    if n_tensors == 0:
        raise ModelFileError(path, "holds no weights (a vocabulary-only GGUF, as llama.cpp's tests use): not a model")
    if arch not in KNOWN_ARCHITECTURES:
        raise ModelFileError(
            path,
            f"unknown model architecture {arch!r}: llama.cpp can't run it "
            f"(the installed gguf package knows {len(KNOWN_ARCHITECTURES)} architectures)",
        )

    def arch_int(suffix: str) -> int | None:
        value = metadata.get(f"{arch}.{suffix}")
        return int(value) if isinstance(value, int) else None

    tokens = metadata.get("tokenizer.ggml.tokens")
    n_vocab = arch_int("vocab_size") or (tokens.length if isinstance(tokens, _SkippedArray) else None)
    return ModelFacts(
        path=path.resolve(),
        size_bytes=size,
        gguf_version=version,
        architecture=arch,
        name=_text(metadata.get("general.name")),  # a file's words: shown plain wherever they go
        n_params=n_params,
        quantization=_quantization(metadata.get("general.file_type"), type_counts),
        n_tensors=n_tensors,
        n_layers=arch_int("block_count"),
        n_ctx_train=arch_int("context_length"),
        n_embd=arch_int("embedding_length"),
        n_vocab=n_vocab,
        has_chat_template="tokenizer.chat_template" in metadata,
        metadata={k: v for k, v in metadata.items() if not isinstance(v, _SkippedArray)},
    )


def _text(value: Any) -> str | None:
    return plain(value, 120) if isinstance(value, str) and value.strip() else None


def _quantization(file_type: int | None, type_counts: dict[int, int]) -> str:
    """llama.cpp's file type name ("Q4_K_M"), or the dominant tensor type if unset."""
    if file_type is not None:
        try:
            return gguf.LlamaFileType(file_type).name.removeprefix("MOSTLY_").removeprefix("ALL_")
        except ValueError:
            return f"type {file_type}"
    if not type_counts:
        return "unknown"
    dominant = max(type_counts, key=type_counts.get)
    return gguf.GGMLQuantizationType(dominant).name


def format_size(n_bytes: int) -> str:
    """Model size the way llama-bench prints it (binary units)."""
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n_bytes >= scale:
            return f"{n_bytes / scale:.2f} {unit}"
    return f"{n_bytes} B"


def format_params(n_params: int) -> str:
    for unit, scale in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n_params >= scale:
            return f"{n_params / scale:.2f} {unit}"
    return str(n_params)
