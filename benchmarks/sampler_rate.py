"""Does the sampler hold its rate, and what does it cost?

Samples a replayed trace at 50 Hz (and the CPU estimate, which reads
/proc/stat and is sampled at 10 Hz since it changes only every 100 ms) for 10 s and prints the achieved rate, its error, the
worst interval, late deadlines, and the sampler thread's own CPU time as a
share of one core (read from /proc for that thread, so the main thread
sleeping doesn't count).

    .venv/bin/python benchmarks/sampler_rate.py [--seconds 10] [--rate-hz 50]
"""
from __future__ import annotations

import argparse
import os
import time

from tpw_desktop.paths import resources_dir
from tpw_desktop.power import Sampler, open_sources


def thread_cpu_s(native_id: int) -> float:
    """User + system CPU seconds of one thread of this process (Linux)."""
    with open(f"/proc/self/task/{native_id}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def measure(spec: str, rate_hz: float, seconds: float) -> None:
    sampler = Sampler(open_sources(spec), rate_hz=rate_hz).start()
    time.sleep(0.2)  # let it settle; measure a steady window
    native = sampler._thread.native_id
    cpu0, wall0 = thread_cpu_s(native), time.monotonic()
    n0 = sampler.stats().n_samples
    time.sleep(seconds)
    cpu1, wall1 = thread_cpu_s(native), time.monotonic()
    stats = sampler.stats()
    sampler.stop()
    window_hz = (stats.n_samples - n0) / (wall1 - wall0)
    cpu_share = (cpu1 - cpu0) / (wall1 - wall0)
    target = sampler.rate_hz  # the requested rate, unless every source changes more slowly
    capped = "" if target == rate_hz else f" (requested {rate_hz:g} Hz; the source changes only every {1000 / target:.0f} ms)"
    print(f"{spec.split(':')[0]:9} target {target:g} Hz{capped}: achieved {stats.achieved_hz:.3f} Hz "
          f"({(stats.achieved_hz / target - 1) * 100:+.2f}%), over the window {window_hz:.2f} Hz; "
          f"max interval {stats.max_interval_ms:.1f} ms; late {stats.n_late}; errors {stats.n_errors}; "
          f"sampler thread CPU {cpu_share * 100:.2f}% of one core")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rate-hz", type=float, default=50.0)
    args = parser.parse_args()
    measure(f"replay:{resources_dir() / 'traces' / 'demo-gpu.csv'}", args.rate_hz, args.seconds)
    measure("estimate", args.rate_hz, args.seconds)


if __name__ == "__main__":
    main()
