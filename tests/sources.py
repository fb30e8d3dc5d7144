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


class FailsOnceAt(Switchable):
    """A counter source whose first read at or after ``fail_at_ns`` fails (a one-off NVML hiccup)."""

    name = "hiccup"

    def __init__(self):
        super().__init__()
        self.fail_at_ns: int | None = None
        self.failed_at_ns: int | None = None

    def read(self):
        now = time.monotonic_ns()
        if self.fail_at_ns is not None and self.failed_at_ns is None and now >= self.fail_at_ns:
            self.failed_at_ns = now
            raise OSError("transient read error")
        return super().read()
