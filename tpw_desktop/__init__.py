"""tpw-desktop: how many tokens does this machine produce per joule?

The core (engine, power, metrics, store, session, cli) never imports Qt;
only ``tpw_desktop.ui`` does.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("tpw-desktop")
except PackageNotFoundError:  # running from a source tree that isn't installed
    __version__ = "0+unknown"
