"""Server URLs typed by a user (an endpoint, a Prometheus): checked once, credentials kept apart.

A URL may carry a password (``http://user:pw@host``) or a token in its
query. ``ServerUrl`` keeps the full URL for the requests only; everything
that is printed, stored, exported, labelled or saved in the window's
settings is ``shown``, with the userinfo and secret-looking query values
replaced by ``***``.
"""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass, field

from ..errors import TpwError

REDACTED = "***"
# Query parameters whose values are secrets in the APIs people put behind proxies.
_SECRET_PARAMS = re.compile(r"(key|token|secret|password|passwd|pwd|auth|signature|sig)", re.I)
_USERINFO = re.compile(r"(//)[^/@\s]*@")


@dataclass(frozen=True)
class ServerUrl:
    full: str = field(repr=False)  # for the requests only: never shown
    shown: str
    scheme: str
    host: str
    port: int | None
    path: str

    def __str__(self) -> str:
        return self.shown

    @property
    def has_credentials(self) -> bool:
        return self.full != self.shown


def redact(text: str) -> str:
    """``text`` (a URL, or a message holding one) with userinfo and secret query values hidden."""
    text = _USERINFO.sub(rf"\1{REDACTED}@", text)
    return re.sub(rf"([?&][^=&#\s]*{_SECRET_PARAMS.pattern}[^=&#\s]*=)[^&#\s]*", rf"\1{REDACTED}", text, flags=re.I)


def server_url(text: str, what: str, example: str) -> ServerUrl:
    """``text`` checked as an http(s) URL with a host and a valid port; else a TpwError naming ``what``."""
    bad = TpwError(f"{what} {redact(text)!r}: not a server URL; expected one like {example}")
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in text):
        raise bad
    try:
        parsed = urllib.parse.urlsplit(text)
        port = parsed.port  # raises on a port that isn't a number in 0-65535
    except ValueError:
        raise bad from None
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise bad
    full = text.rstrip("/")
    return ServerUrl(full, redact(full), parsed.scheme, parsed.hostname, port, parsed.path.rstrip("/"))
