"""RAPL against a fake /sys/class/powercap tree: zones, wraparound, root-only files."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tpw_desktop.power import PowerEnvironment, Sampler, SourceUnavailable, open_sources
from tpw_desktop.power.rapl import rapl_sources

WRAP_UJ = 262_143_328_850


def make_zone(path: Path, name: str, energy_uj: int) -> Path:
    path.mkdir(parents=True)
    (path / "name").write_text(name + "\n")
    (path / "energy_uj").write_text(f"{energy_uj}\n")
    (path / "max_energy_range_uj").write_text(f"{WRAP_UJ}\n")
    return path


@pytest.fixture
def powercap(tmp_path) -> Path:
    root = tmp_path / "powercap"
    pkg = make_zone(root / "intel-rapl:0", "package-0", 1_000_000)
    make_zone(pkg / "intel-rapl:0:0", "core", 500_000)
    make_zone(pkg / "intel-rapl:0:1", "dram", 200_000)
    make_zone(root / "intel-rapl:1", "package-1", 3_000_000)
    make_zone(root / "intel-rapl:1" / "intel-rapl:1:0", "dram", 100_000)
    make_zone(root / "intel-rapl-mmio:0", "package-0", 0)  # a duplicate MMIO view: ignored
    return root


def test_package_and_dram_zones_not_core(clock, powercap):
    sources = rapl_sources(clock, powercap)
    assert [s.name for s in sources] == ["rapl:package-0", "rapl:package-1", "rapl:dram-0:1", "rapl:dram-1:0"]
    assert all(s.method == "counter" and s.counter_wrap_uj == WRAP_UJ for s in sources)
    assert sources[0].measures == "CPU package-0 (RAPL)"


def test_power_is_the_counter_rate(clock, powercap):
    source = rapl_sources(clock, powercap)[0]
    (powercap / "intel-rapl:0" / "energy_uj").write_text("3000000\n")
    clock.advance(0.5)
    reading = source.read()
    assert reading.counter_uj == 3_000_000
    assert reading.power_w == 4.0  # 2 J in 0.5 s


def test_wraparound(clock, powercap):
    energy = powercap / "intel-rapl:0" / "energy_uj"
    energy.write_text(f"{WRAP_UJ - 1_000_000}\n")
    source = rapl_sources(clock, powercap)[0]
    energy.write_text("2000000\n")  # went round: 1 J before the wrap + 2 J after
    clock.advance(1.0)
    assert source.read().power_w == 3.0


def test_sampler_accumulates_energy_across_a_wrap(powercap):
    import time

    energy = powercap / "intel-rapl:0" / "energy_uj"
    energy.write_text(f"{WRAP_UJ - 1_000_000}\n")
    [source] = [s for s in rapl_sources(time.monotonic_ns, powercap) if s.name == "rapl:package-0"]
    with Sampler([source], rate_hz=100) as sampler:
        time.sleep(0.1)
        energy.write_text("4000000\n")
        time.sleep(0.1)
    data = sampler.snapshot(0)
    assert data["energy_j"][0] == 0.0
    assert data["energy_j"][-1] == 5.0


def test_no_powercap_folder(clock, tmp_path):
    with pytest.raises(SourceUnavailable, match="does not exist"):
        rapl_sources(clock, tmp_path / "absent")


def test_no_zones(clock, tmp_path):
    with pytest.raises(SourceUnavailable, match="no intel-rapl zones"):
        rapl_sources(clock, tmp_path)


def test_spec_rapl_in_a_list(clock, powercap):
    env = PowerEnvironment(clock_ns=clock, rapl_root=powercap, tdp_w=80)
    names = [s.name for s in open_sources("rapl,estimate", env)]
    assert names == ["rapl:package-0", "rapl:package-1", "rapl:dram-0:1", "rapl:dram-1:0", "estimate"]


PERMISSION_CHECK = """
import sys, time
from pathlib import Path
from tpw_desktop.power import SourceUnavailable
from tpw_desktop.power.rapl import rapl_sources
try:
    rapl_sources(time.monotonic_ns, Path(sys.argv[1]))
except SourceUnavailable as exc:
    print(exc)
    sys.exit(3)
"""


def test_root_only_files_give_an_actionable_message(tmp_path):
    """Since CVE-2020-8694 energy_uj is readable by root only.

    Root itself is never denied, so as root the check runs without the
    capabilities that bypass file permissions (util-linux's setpriv).
    """
    root = tmp_path / "powercap"
    make_zone(root / "intel-rapl:0", "package-0", 1_000)
    (root / "intel-rapl:0" / "energy_uj").chmod(0o000)
    command = [sys.executable, "-c", PERMISSION_CHECK, str(root)]
    if os.geteuid() == 0:
        if not shutil.which("setpriv"):
            pytest.skip("running as root without setpriv: can't be denied a read")
        drop = "-dac_override,-dac_read_search"
        command = ["setpriv", f"--bounding-set={drop}", f"--inh-caps={drop}", *command]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 3, done.stderr
    assert "readable only by root" in done.stdout
    assert "chmod o+r" in done.stdout and "udev rule" in done.stdout
