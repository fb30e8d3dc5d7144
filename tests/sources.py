"""Power sources for tests that need one to misbehave on cue."""
import time

from tpw_desktop.power import PowerReading


class Switchable:
    """A counter source (100 W) that can be unplugged; its counter keeps counting."""

    method = "counter"
    counter_wrap_uj = None
    name = "switchable"
    measures = "test"

    def __init__(self):
        self.t0 = time.monotonic_ns()
        self.alive = True

    def read(self):
        if not self.alive:
            raise OSError("device went away")
        now = time.monotonic_ns()
        return PowerReading(now, 100.0, (now - self.t0) // 10)  # 100 W = 100 uJ per us = 1 uJ per 10 ns

    def info(self):
        return {}

    def close(self):
        pass
