"""Server URLs typed by a user (an endpoint, a Prometheus): checked once, with a message instead of a traceback."""

from __future__ import annotations

import urllib.parse

from ..errors import TpwError


def http_url(text: str, what: str, example: str) -> urllib.parse.SplitResult:
    """``text`` split, if it is an http(s) URL with a host and a valid port; else a TpwError naming ``what``."""
    bad = TpwError(f"{what} {text!r}: not a server URL; expected one like {example}")
    if any(c.isspace() or ord(c) < 32 for c in text):
        raise bad
    try:
        parsed = urllib.parse.urlsplit(text)
        parsed.port  # noqa: B018 -- raises on a port that isn't a number in 0-65535
    except ValueError:
        raise bad from None
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise bad
    return parsed
