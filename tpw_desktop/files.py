"""Files tpw writes or reads whole: written all at once or not at all, hashed in chunks.

An export or a results file that fails halfway (a missing folder, a full
disk, an unknown session) must not truncate what was there before: it is a
temporary file beside the target, renamed on success.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from .errors import TpwError


@contextmanager
def atomic_writer(path: str | os.PathLike, *, newline: str | None = None) -> Iterator[TextIO]:
    """A text file to write into; ``path`` is replaced only when the block ends without an error."""
    path = Path(path)
    if not path.parent.is_dir():
        raise TpwError(f"{path}: the folder {path.parent} does not exist")
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    except OSError as exc:
        raise TpwError(f"{path}: cannot write here ({exc.strerror})") from None
    try:
        with os.fdopen(fd, "w", newline=newline) as f:
            yield f
        os.replace(tmp, path)
    except OSError as exc:
        _remove(tmp)
        raise TpwError(f"{path}: could not be written ({exc.strerror or exc})") from None
    except BaseException:
        _remove(tmp)
        raise


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def file_sha256(path: str | os.PathLike) -> str:
    """The file's sha256, read in 1 MiB chunks (a model of many GB never sits in memory)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
