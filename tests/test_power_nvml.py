"""NVML through an autospec'd fake of pynvml: support per metric, lost GPUs."""

import time

import numpy as np
import pytest
from fake_nvml import FakeGpu, make_fake_nvml

from tpw_desktop.power import (
    PowerEnvironment,
    Sampler,
    SourceUnavailable,
    availability,
    open_sources,
)
from tpw_desktop.power.base import NA
from tpw_desktop.power.nvml import NvmlDevice, NvmlLibrary, nvml_sources


def test_the_fake_only_accepts_real_signatures():
    fake = make_fake_nvml([FakeGpu()])
    with pytest.raises(TypeError):
        fake.nvmlDeviceGetPowerUsage("handle-0", "an extra argument the real API doesn't take")


def test_counter_and_instant_power(clock):
    gpu = FakeGpu(power_mw=312_500, energy_mj=5_000)
    [source] = nvml_sources(clock, module=make_fake_nvml([gpu]))
    assert source.name == "nvml:0"
    assert source.method == "counter"
    assert source.power_field == "instant"
    assert "NVIDIA H100" in source.measures
    reading = source.read()
    assert reading.t_ns == clock.now
    assert reading.power_w == 312.5
    assert reading.counter_uj == 5_000_000


def test_reproducibility_facts(clock):
    [source] = nvml_sources(clock, module=make_fake_nvml([FakeGpu()]))
    assert source.info() == {
        "gpu_name": "NVIDIA H100 80GB HBM3",
        "gpu_uuid": "GPU-11111111-2222-3333-4444-555555555555",
        "architecture": "HOPPER",
        "driver": "580.65.06",
        "power_limit_w": 700.0,
        "persistence_mode": True,
        "power_field": "instant",
    }
    assert source.telemetry() == {
        "sm_clock_mhz": 1980,
        "memory_clock_mhz": 2619,
        "temperature_c": 54,
        "utilization_percent": 97,
        "memory_used_mib": 3072.0,
    }


def test_without_an_energy_counter_power_is_sampled(clock):
    gpu = FakeGpu(unsupported={"nvmlDeviceGetTotalEnergyConsumption"})
    [source] = nvml_sources(clock, module=make_fake_nvml([gpu]))
    assert source.method == "sampled"
    assert source.read().counter_uj is None


def test_instant_field_not_supported_per_entry_falls_back_to_the_average(clock):
    gpu = FakeGpu(unsupported={"instant_field"}, arch=3)  # 3 = NVML_DEVICE_ARCH_PASCAL
    [source] = nvml_sources(clock, module=make_fake_nvml([gpu]))
    assert source.power_field == "average"
    assert source.read().power_w == 250.0


def test_usage_on_ampere_and_newer_is_labelled_a_one_second_average(clock):
    import pynvml

    gpu = FakeGpu(unsupported={"nvmlDeviceGetFieldValues"}, arch=pynvml.NVML_DEVICE_ARCH_AMPERE)
    [source] = nvml_sources(clock, module=make_fake_nvml([gpu]))
    assert source.power_field == "1s-average"


def test_ga100_is_ampere_but_not_a_one_second_average(clock):
    """nvml.h: "On Ampere (except GA100) or newer GPUs ...": the A100 and A30 are GA100."""
    import pynvml

    for name in ("NVIDIA A100-SXM4-80GB", "NVIDIA A30"):
        gpu = FakeGpu(name=name, unsupported={"nvmlDeviceGetFieldValues"}, arch=pynvml.NVML_DEVICE_ARCH_AMPERE)
        [source] = nvml_sources(clock, module=make_fake_nvml([gpu]))
        assert source.power_field == "average"
    gpu = FakeGpu(name="NVIDIA A40", unsupported={"nvmlDeviceGetFieldValues"}, arch=pynvml.NVML_DEVICE_ARCH_AMPERE)
    assert nvml_sources(clock, module=make_fake_nvml([gpu]))[0].power_field == "1s-average"


def test_energy_integrated_from_a_one_second_average_is_low_confidence_below_five_seconds(clock):
    import pynvml

    gpu = FakeGpu(
        unsupported={"nvmlDeviceGetFieldValues", "nvmlDeviceGetTotalEnergyConsumption"},
        arch=pynvml.NVML_DEVICE_ARCH_HOPPER,
    )
    [source] = nvml_sources(clock, module=make_fake_nvml([gpu]))
    assert (source.method, source.power_field, source.resolution_s) == ("sampled", "1s-average", 0.5)
    with_counter = nvml_sources(clock, module=make_fake_nvml([FakeGpu(arch=pynvml.NVML_DEVICE_ARCH_HOPPER)]))[0]
    assert with_counter.resolution_s is None  # judged by the counter's own updates


def test_an_unsupported_metric_is_na_and_the_rest_still_work(clock):
    gpu = FakeGpu(unsupported={"nvmlDeviceGetTemperature", "nvmlDeviceGetPowerManagementLimit"})
    [source] = nvml_sources(clock, module=make_fake_nvml([gpu]))
    assert source.device.temperature_c() is NA
    assert "temperature_c" not in source.telemetry()
    assert "power_limit_w" not in source.info()
    assert source.telemetry()["sm_clock_mhz"] == 1980
    assert source.read().power_w == 250.0


def test_a_gpu_with_neither_power_nor_energy_is_unavailable(clock):
    gpu = FakeGpu(
        unsupported={"nvmlDeviceGetFieldValues", "nvmlDeviceGetPowerUsage", "nvmlDeviceGetTotalEnergyConsumption"}
    )
    with pytest.raises(SourceUnavailable, match="neither power nor energy"):
        nvml_sources(clock, module=make_fake_nvml([gpu]))


def test_pick_gpus(clock):
    fake = make_fake_nvml([FakeGpu(), FakeGpu(name="NVIDIA A100"), FakeGpu()])
    sources = nvml_sources(clock, [1, 2], module=fake)
    assert [s.name for s in sources] == ["nvml:1", "nvml:2"]
    assert "A100" in sources[0].measures
    with pytest.raises(SourceUnavailable, match="there is no GPU 5"):
        nvml_sources(clock, [5], module=fake)


def test_spec_names_gpus(clock):
    env = PowerEnvironment(clock_ns=clock, nvml_module=make_fake_nvml([FakeGpu(), FakeGpu()]))
    assert [s.name for s in open_sources("nvml:0+1", env)] == ["nvml:0", "nvml:1"]
    assert [s.name for s in open_sources("auto", env)] == ["nvml:0", "nvml:1"]


def test_no_driver_means_auto_falls_back(clock, tmp_path):
    env = PowerEnvironment(clock_ns=clock, nvml_module=make_fake_nvml([], driver_missing=True), rapl_root=tmp_path)
    [source] = open_sources("auto", env)
    assert source.method == "estimated"
    report = {a.kind: a for a in availability(env)}
    assert not report["nvml"].available and "NVML Shared Library Not Found" in report["nvml"].detail
    assert report["estimate"].available


def test_init_and_shutdown_are_paired(clock):
    fake = make_fake_nvml([FakeGpu(), FakeGpu()])
    sources = nvml_sources(clock, module=fake)
    for source in sources:
        source.close()
    assert fake.nvmlInit.call_count == fake.nvmlShutdown.call_count == 3  # listing + one per GPU


def test_library_query_returns_na_only_for_unsupported():
    import pynvml

    fake = make_fake_nvml([FakeGpu(unsupported={"nvmlDeviceGetName"})])
    lib = NvmlLibrary(fake)
    device = NvmlDevice(lib, 0)
    assert device.name() is NA
    fake.nvmlDeviceGetUUID.side_effect = pynvml.NVMLError(pynvml.NVML_ERROR_UNKNOWN)
    with pytest.raises(pynvml.NVMLError):
        device.uuid()


def test_gpu_lost_mid_run_leaves_a_gap_and_the_sampler_goes_on():
    gpus = [FakeGpu(), FakeGpu(energy_mj=0)]
    sources = nvml_sources(time.monotonic_ns, module=make_fake_nvml(gpus))
    with Sampler(sources, rate_hz=200) as sampler:
        time.sleep(0.1)
        gpus[0].lost = True
        time.sleep(0.1)
        gpus[0].lost = False
        time.sleep(0.1)
    lost = sampler.snapshot(0)["power_w"]
    healthy = sampler.snapshot(1)["power_w"]
    assert sampler.stats().n_errors > 0
    assert "GPU is lost" in sampler.errors()[0].message
    assert np.isnan(lost).any() and (lost[-3:] == 250.0).all()  # recovered
    assert not np.isnan(healthy).any()


def test_counter_and_integrated_power_agree_for_a_steady_gpu():
    """What scripts/gpu_check.sh reports per window, on a fake GPU drawing a steady 250 W."""
    gpu = FakeGpu(power_mw=250_000, energy_mj=0)
    start = time.monotonic_ns()

    def energy_now(_gpu):
        return (time.monotonic_ns() - start) // 4_000  # 250 W = 250 mJ per ms = 1 mJ per 4 us

    fake = make_fake_nvml([gpu])
    fake.nvmlDeviceGetTotalEnergyConsumption.side_effect = lambda handle: energy_now(gpu)
    sources = nvml_sources(time.monotonic_ns, module=fake)
    with Sampler(sources, rate_hz=200) as sampler:
        time.sleep(0.05)
        t0 = time.monotonic_ns()
        time.sleep(0.5)
        t1 = time.monotonic_ns()
        sampler.wait_until(t1)
    [row] = sampler.compare_methods(t0, t1)
    assert row["source"] == "nvml:0"
    assert row["counter_j"] == pytest.approx(250 * (t1 - t0) / 1e9, rel=0.02)
    assert row["integrated_power_j"] == pytest.approx(250 * (t1 - t0) / 1e9, rel=1e-6)
    assert row["ratio"] == pytest.approx(1.0, rel=0.02)
    assert row["power_samples"] >= 80


def test_the_sampler_judges_a_one_second_average_by_half_its_period():
    import pynvml

    gpu = FakeGpu(
        power_mw=200_000,
        unsupported={"nvmlDeviceGetFieldValues", "nvmlDeviceGetTotalEnergyConsumption"},
        arch=pynvml.NVML_DEVICE_ARCH_HOPPER,
    )
    sources = nvml_sources(time.monotonic_ns, module=make_fake_nvml([gpu]))
    with Sampler(sources, rate_hz=100) as sampler:
        time.sleep(0.05)
        t0 = time.monotonic_ns()
        time.sleep(0.25)
        t1 = time.monotonic_ns()
        sampler.wait_until(t1)
        w = sampler.window_energy(t0, t1)
    assert w.method == "sampled"
    assert w.error_j == pytest.approx(200.0 * 0.5, rel=1e-9)  # half a second of 200 W
    assert w.low_confidence_reason.startswith("resolution error up to")
