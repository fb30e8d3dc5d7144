"""llama.cpp's own log lines: kept, not printed over the user's terminal.

llama.cpp logs through one process-wide callback. tpw installs its own: every
line goes to the ``tpw.llama`` Python logger (silent unless asked for, e.g.
``tpw -v``) and the last lines are kept, so a model that fails to load can
say why ("unknown model architecture: 'foo'") instead of "could not load".
"""

from __future__ import annotations

import ctypes
import logging
from collections import deque

logger = logging.getLogger("tpw.llama")
# Quiet unless a handler is configured (tpw -v): without this, Python's last-resort
# handler would print llama.cpp's warnings over the user's terminal.
logger.addHandler(logging.NullHandler())

# ggml.h's ggml_log_level: NONE, DEBUG, INFO, WARN, ERROR, CONT (continues the previous line)
_LEVELS = {0: logging.CRITICAL, 1: logging.DEBUG, 2: logging.INFO, 3: logging.WARNING, 4: logging.ERROR}
_CONT = 5


class LlamaLog:
    """The installed callback and the recent lines it saw."""

    def __init__(self, keep: int = 200):
        self.lines: deque[tuple[int, str]] = deque(maxlen=keep)
        self.total = 0  # lines ever seen
        self.listeners: list = []  # called with each line (the quantizer's progress reader)
        self._level = logging.INFO
        self._callback = None  # the ctypes function must live as long as llama.cpp may call it

    def install(self) -> None:
        import llama_cpp

        if self._callback is None:
            self._callback = llama_cpp.llama_log_callback(self._on_line)
        llama_cpp.llama_log_set(self._callback, ctypes.c_void_p(0))

    def _on_line(self, level: int, text: bytes, _user_data) -> None:
        if level != _CONT:
            self._level = _LEVELS.get(level, logging.INFO)
        line = text.decode("utf-8", "replace").rstrip("\n")
        if line:
            self.lines.append((self._level, line))
            self.total += 1
            logger.log(self._level, line)
            for listener in self.listeners:
                listener(line)

    def mark(self) -> int:
        """A position to read new lines from (the count seen so far)."""
        return self.total

    def problems_since(self, mark: int) -> list[str]:
        """Warning and error lines logged since ``mark`` (those still kept), oldest first."""
        new = min(self.total - mark, len(self.lines))
        recent = list(self.lines)[len(self.lines) - new :] if new else []
        return [line for level, line in recent if level >= logging.WARNING]


LLAMA_LOG = LlamaLog()
