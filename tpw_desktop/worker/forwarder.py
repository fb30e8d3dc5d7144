"""The measuring process's outbox: what happened, in order, plus new power samples, in batches.

One batch every 250 ms while a run streams (every 2 s when the model's
threads take every core) and every second otherwise (at once for a state
change the window is waiting for), never one message per token: each
wake-up here takes CPU the model's threads would use.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque

from ..power import Sampler
from .protocol import Batch, SampleBlock, SourcesFailing

# As often as the window redraws while a run streams (its rate charts have 250 ms bins), and
# every wake-up here takes the CPU the model's threads would use. When they take every core,
# every 2 s: each frame the window draws then stalls one of the model's threads while its
# partner waits at llama.cpp's barrier (on the 2-core VM a run from the window read 0.92x of
# `tpw bench` at 4 frames a second, 0.94x at 1, 0.98x at 0.5; minimized, 1.00x).
STREAMING_BATCH_S = 0.25
CROWDED_BATCH_S = 2.0
IDLE_BATCH_S = 1.0


def streaming_batch_s(model_threads: int | None, cores: int | None) -> float:
    """Seconds between batches while a run streams: 4 a second with a core to spare, else one every 2 s."""
    crowded = model_threads is None or cores is None or model_threads >= cores
    return CROWDED_BATCH_S if crowded else STREAMING_BATCH_S


class Forwarder:
    """Sends the outbox and new samples over the pipe, batched; the only thread that writes to it."""

    def __init__(self, conn):
        self.conn = conn  # the write end of the pipe to the window
        self.outbox: deque = deque()
        self.streaming = threading.Event()
        self.streaming_batch_s = STREAMING_BATCH_S
        self.wake = threading.Event()
        self.closed = threading.Event()
        self._lock = threading.Lock()  # the sampler and its cursors change together
        self._sampler: Sampler | None = None
        self._cursors: list[int] = []
        self._failing: tuple[str, ...] = ()
        self._thread = threading.Thread(target=self._run, name="tpw-forwarder", daemon=True)
        self._thread.start()

    def post(self, item, urgent: bool = False) -> None:
        self.outbox.append(item)
        if urgent:
            self.wake.set()

    def stream(self, model_threads: int | None) -> None:
        """A run streams: batches at the pace ``streaming_batch_s`` allows for the model's threads."""
        self.streaming_batch_s = streaming_batch_s(model_threads, os.cpu_count())
        self.streaming.set()

    def use_sampler(self, sampler: Sampler | None) -> None:
        self.flush()
        with self._lock:
            self._sampler = sampler
            self._cursors = [0] * len(sampler.sources) if sampler else []
            self._failing = ()

    def flush(self) -> None:
        """Send what is waiting now (from the main thread, before it changes the sampler)."""
        self.wake.set()
        deadline = time.monotonic() + 2
        while self.outbox and time.monotonic() < deadline and not self.closed.is_set():
            time.sleep(0.005)

    def _run(self) -> None:
        while not self.closed.is_set():
            self.wake.wait(self.streaming_batch_s if self.streaming.is_set() else IDLE_BATCH_S)
            self.wake.clear()
            try:
                self.conn.send(self._next_batch())
            except (OSError, EOFError, BrokenPipeError):  # the window is gone
                self.closed.set()

    def _next_batch(self) -> Batch:
        items = []
        while self.outbox:
            items.append(self.outbox.popleft())
        with self._lock:
            return self._with_samples(items)

    def _with_samples(self, items: list) -> Batch:
        sampler, blocks = self._sampler, []
        if sampler is not None:
            for i in range(len(sampler.sources)):
                self._cursors[i], data = sampler.samples_since(i, self._cursors[i])
                if len(data["t_ns"]):
                    blocks.append(SampleBlock(i, data["t_ns"], data["power_w"], data["energy_j"]))
            failing = tuple(sampler.failing_sources())
            if failing != self._failing:
                errors = sampler.errors()
                items.append(SourcesFailing(failing, errors[-1].message if failing and errors else None))
                self._failing = failing
        hz = sampler.stats().achieved_hz if sampler is not None else None
        return Batch(tuple(items), tuple(blocks), hz)

    def close(self) -> None:
        self.flush()
        self.closed.set()
        self.wake.set()
        self._thread.join(2)
