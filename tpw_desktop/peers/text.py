"""A peer's text made safe to show: one line of printable characters, of a bounded length.

A server's error body, a model id, a Prometheus message or label, a file's
name: any of them can hold an escape sequence that rewrites a terminal, a
newline that forges a second message, or megabytes. They are shown only
through ``plain``; the window also sets every such label to plain text.
"""

from __future__ import annotations

import re
import unicodedata

MAX_SHOWN = 200  # characters of a peer's text shown in one message

# ANSI escape sequences (CSI ... final byte, OSC ... BEL/ST, and two-character ones), removed whole.
_ESCAPES = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-_])")
_SPACES = re.compile(r"\s+")


def plain(text: object, limit: int = MAX_SHOWN) -> str:
    """``text`` as one line with no control or format characters, cut at ``limit`` with its length said."""
    s = _ESCAPES.sub("", str(text))
    s = "".join(" " if c.isspace() else c for c in s if c.isspace() or unicodedata.category(c)[0] != "C")
    s = _SPACES.sub(" ", s).strip()
    if len(s) > limit:
        s = f"{s[:limit]}… ({len(s)} characters)"
    return s
