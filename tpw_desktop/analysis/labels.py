"""Chart labels that tell compared variants apart: the part of their names that differs.

``SmolLM2-135M-Instruct-Q4_1`` and ``SmolLM2-135M-Instruct-Q4_K_M`` cut to
24 characters were the same label; what a reader needs under each bar is
``Q4_1`` and ``Q4_K_M``, with the full name beside it (a tooltip, a legend).
Names are compared as words split at ``-``, ``.``, spaces and ``·`` (never
at ``_``, which quantization names use), and the words every name shares at
its start and its end are left out. A session's ``#id`` stays in front.
"""

from __future__ import annotations

import re
import textwrap

_WORDS = re.compile(r"(\s*·\s*|[-.\s]+)")
_SESSION_ID = re.compile(r"^(#\d+)\s+(.*)$")
_NUMBER = re.compile(r"^[\d.,]+$")


def _split(name: str) -> tuple[str, list[str]]:
    match = _SESSION_ID.match(name)
    ident, rest = (match.group(1), match.group(2)) if match else ("", name)
    return ident, _WORDS.split(rest)  # words at even indexes, separators between them


def _common_words(parts: list[list[str]], from_end: bool) -> int:
    """How many leading (or trailing) words all names share."""
    words = [p[::-2] if from_end else p[::2] for p in parts]
    shortest = min(len(w) for w in words)
    n = 0
    while n < shortest - 1 and all(w[n] == words[0][n] for w in words):
        n += 1
    return n


def short_labels(names: list[str]) -> list[str]:
    """Each name cut to what tells it apart from the others (the whole name when nothing does)."""
    if len(names) < 2 or len(set(names)) < len(names):
        return list(names)
    split = [_split(n) for n in names]
    parts = [p for _, p in split]
    head = _common_words(parts, from_end=False)
    tail = _common_words(parts, from_end=True)
    labels = []
    for (ident, p), name in zip(split, names):
        words = len(p[::2])
        keep = max(words - head - tail, 1)
        start = min(head, words - keep)
        if _NUMBER.match(p[2 * (start + keep) - 2]) and start + keep < words:
            keep += 1  # "250 W", never a bare "250"
        middle = "".join(p[2 * start : 2 * (start + keep) - 1]).strip(" -.·")
        labels.append(f"{ident} {middle}".strip() if middle else name)
    return labels if len(set(labels)) == len(labels) else list(names)


def wrapped(label: str, width: int) -> list[str]:
    """A label on lines of at most ``width`` characters (a long word is cut, never lost: it is on a line
    of its own, broken where it must be)."""
    return textwrap.wrap(label, width, break_on_hyphens=True) or [label]
