"""Write a file all at once or not at all: a temporary file beside it, renamed on success.

An export or a results file that fails halfway (a missing folder, a full
disk, an unknown session) must not truncate what was there before.
"""

from __future__ import annotations

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
