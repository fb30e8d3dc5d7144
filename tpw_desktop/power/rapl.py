"""CPU package and DRAM energy from Linux RAPL (``/sys/class/powercap``).

``energy_uj`` is a counter in microjoules that wraps to zero at
``max_energy_range_uj``. Since CVE-2020-8694 most distributions make it
readable by root only; we say so and how to fix it instead of failing.
The sysfs root is a parameter, so tests run against a fake tree.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..metrics import counter_delta_uj
from .base import PowerReading, SourceUnavailable

DEFAULT_SYSFS_ROOT = Path("/sys/class/powercap")
# Zones worth measuring: "package-N" (cores + uncore) and "dram".
# "core"/"uncore"/"psys" either sit inside a package or overlap it.
_WANTED_ZONES = ("package", "dram")

PERMISSION_HINT = (
    "RAPL energy files are readable only by root on this system (since CVE-2020-8694). "
    "To let tpw read them until the next reboot: sudo chmod o+r {root}/intel-rapl:*/energy_uj "
    "{root}/intel-rapl:*/intel-rapl:*/energy_uj ; to make it permanent, add a udev rule: "
    'ACTION=="add", SUBSYSTEM=="powercap", RUN+="/bin/chmod o+r /sys%p/energy_uj"'
)


def _read_int(path: Path) -> int:
    return int(path.read_text().strip())


class RaplSource:
    """One RAPL zone; power is the counter's rate since the previous read."""

    method = "counter"

    def __init__(self, zone_dir: Path, clock_ns: Callable[[], int], label: str):
        self.zone_dir = zone_dir
        self._clock_ns = clock_ns
        self._energy_file = zone_dir / "energy_uj"
        self.zone_name = (zone_dir / "name").read_text().strip()
        self.name = f"rapl:{label}"
        self.measures = f"CPU {self.zone_name} (RAPL)"
        self.counter_wrap_uj = _read_int(zone_dir / "max_energy_range_uj")
        self._previous: tuple[int, int] | None = None
        self.read()  # fail now, not in the sampler, if the file can't be read

    def read(self) -> PowerReading:
        counter = _read_int(self._energy_file)
        t_ns = self._clock_ns()
        power_w = float("nan")
        if self._previous is not None:
            t0, c0 = self._previous
            if t_ns > t0:
                power_w = counter_delta_uj(c0, counter, self.counter_wrap_uj) / 1e6 / ((t_ns - t0) / 1e9)
        self._previous = (t_ns, counter)
        return PowerReading(t_ns, power_w, counter)

    def info(self) -> dict[str, Any]:
        return {"zone": self.zone_name, "path": str(self.zone_dir), "wrap_uj": self.counter_wrap_uj}

    def close(self) -> None:
        pass


def rapl_sources(clock_ns: Callable[[], int], root: Path = DEFAULT_SYSFS_ROOT) -> list[RaplSource]:
    """Package and DRAM zones; SourceUnavailable with the reason if there are none we can read."""
    if not root.is_dir():
        raise SourceUnavailable(f"RAPL: {root} does not exist (not Linux, or no powercap driver)")
    zones = sorted(p for p in root.glob("intel-rapl:*") if (p / "energy_uj").exists())
    zones += sorted(p for p in root.glob("intel-rapl:*/intel-rapl:*") if (p / "energy_uj").exists())
    if not zones:
        raise SourceUnavailable(f"RAPL: no intel-rapl zones under {root} (a VM, or a CPU without RAPL)")
    sources: list[RaplSource] = []
    for zone in zones:
        try:
            name = (zone / "name").read_text().strip()
        except OSError:
            continue
        if not name.startswith(_WANTED_ZONES):
            continue
        # "dram" zones repeat per package: keep the sysfs id to tell them apart.
        label = name if name.startswith("package") else f"{name}-{zone.name.split(':', 1)[1]}"
        try:
            sources.append(RaplSource(zone, clock_ns, label))
        except PermissionError:
            raise SourceUnavailable(PERMISSION_HINT.format(root=root)) from None
    if not sources:
        raise SourceUnavailable(f"RAPL: no package or dram zone under {root}")
    return sources
