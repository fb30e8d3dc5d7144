"""A process that records one session, for the crash and concurrency tests.

usage: writer_child.py DB MODEL SECONDS RATE_HZ
Prints "session N" once the session exists, writes samples (a replay
source) and a token every 10 ms for SECONDS, then finishes the session.
The crash test kills it with SIGKILL before it gets that far.
"""

import sys
import time

import numpy as np
from store_meta import meta_for

from tpw_desktop.power import PowerTrace, ReplaySource, Sampler
from tpw_desktop.record.calls import TokenEvent
from tpw_desktop.record.stored import RunOutcome
from tpw_desktop.store import SessionWriter


def main() -> None:
    db, model, seconds, rate_hz = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
    trace = PowerTrace(np.array([0.0, 10.0]), np.array([80.0, 120.0]), None, "ramp.csv")
    source = ReplaySource(trace, time.monotonic_ns)
    with Sampler([source], rate_hz=rate_hz) as sampler, SessionWriter(db) as writer:
        session_id = writer.begin(meta_for(model, [source]), sampler)
        print(f"session {session_id}", flush=True)
        end = time.monotonic() + seconds
        i = 0
        while time.monotonic() < end:
            writer.token(session_id, "tg128", 0, 0, TokenEvent(time.monotonic_ns(), i, 42, "x"), store_text=True)
            i += 1
            time.sleep(0.01)
        writer.finish(session_id, "completed", RunOutcome(None, None, sampler=sampler.stats()))
    print("done", flush=True)


if __name__ == "__main__":
    main()
