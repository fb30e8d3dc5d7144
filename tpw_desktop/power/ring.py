"""A bounded, thread-safe ring buffer of numeric columns.

One producer (the sampler thread) appends rows; any thread takes a snapshot.
As in friture, every row is written twice (at ``i`` and ``i + capacity``) so
the last ``n`` rows are always one contiguous slice: a snapshot is a single
numpy copy, never a concatenation.
"""

from __future__ import annotations

import threading

import numpy as np


class RingBuffer:
    def __init__(self, capacity: int, columns: dict[str, np.dtype | type]):
        if capacity <= 0:
            raise ValueError("capacity must be positive")
        self.capacity = capacity
        self._columns = {name: np.zeros(2 * capacity, dtype=dtype) for name, dtype in columns.items()}
        self._next = 0  # index of the next write in [0, capacity)
        self._count = 0  # rows ever written
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return min(self._count, self.capacity)

    @property
    def total_written(self) -> int:
        return self._count

    def append(self, **row) -> None:
        with self._lock:
            i = self._next
            for name, array in self._columns.items():
                value = row[name]
                array[i] = value
                array[i + self.capacity] = value
            self._next = (i + 1) % self.capacity
            self._count += 1

    def snapshot(self, last: int | None = None) -> dict[str, np.ndarray]:
        """Copies of the last ``last`` rows (all stored rows by default), oldest first."""
        with self._lock:
            n = len(self) if last is None else min(last, len(self))
            end = self._next + self.capacity
            return {name: array[end - n : end].copy() for name, array in self._columns.items()}

    def since(self, written_before: int) -> tuple[int, dict[str, np.ndarray]]:
        """Rows appended after the first ``written_before`` ones, and the new total.

        Lets a consumer (the GUI, the store) pull only what is new; rows that
        the ring has already overwritten are lost to it, as they would be anyway.
        """
        with self._lock:
            total = self._count
            n = min(total - written_before, len(self))
            end = self._next + self.capacity
            return total, {name: array[end - n : end].copy() for name, array in self._columns.items()}
