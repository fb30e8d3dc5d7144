"""NVIDIA GPUs through NVML (the ``nvidia-ml-py`` bindings, imported as ``pynvml``).

Three layers, as in nvitop: ``NvmlLibrary`` wraps the module (init once,
every query returns ``NA`` instead of raising when a metric isn't supported),
``NvmlDevice`` is a small device API with units in its names, and
``NvmlSource`` is the power source the sampler reads.

Energy comes from ``nvmlDeviceGetTotalEnergyConsumption`` (mJ since the
driver loaded, Volta and newer) differenced over a window. Live watts come
from the instantaneous power field; ``nvmlDeviceGetPowerUsage`` is the
fallback and is a 1-second average on Ampere and newer, so it is labelled so.

The pynvml module is passed in, so tests hand in an autospec'd fake that
can only be called the way the real module can.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from .base import NA, PowerReading, SourceUnavailable

# Ampere (except GA100) and newer average nvmlDeviceGetPowerUsage over 1 s (nvml.h).
_ONE_SECOND_AVERAGE_ARCHS = ("AMPERE", "ADA", "HOPPER", "BLACKWELL", "RUBIN")
# GA100 is Ampere but excluded by nvml.h; it ships as the A100 and the A30.
_GA100_NAME = re.compile(r"\bA(100|30)\b")
# A 1 s average smears each edge of a window by half its period: the error
# bound of a window integrated from it (see metrics.sampled_window_energy).
ONE_SECOND_AVERAGE_RESOLUTION_S = 0.5


def averages_over_one_second(architecture: Any, name: Any) -> bool:
    """Whether ``nvmlDeviceGetPowerUsage`` is a 1 s average on this GPU (nvml.h)."""
    if architecture not in _ONE_SECOND_AVERAGE_ARCHS:
        return False
    return not (architecture == "AMPERE" and isinstance(name, str) and _GA100_NAME.search(name))


class NvmlLibrary:
    """The pynvml module, with per-metric failure isolation.

    NVML counts ``nvmlInit``/``nvmlShutdown`` pairs itself, so every user
    (a device, a listing) takes its own init and gives it back.
    """

    def __init__(self, module=None):
        if module is None:
            import pynvml as module
        self.nvml = module

    def init(self) -> None:
        try:
            self.nvml.nvmlInit()
        except self.nvml.NVMLError as exc:
            raise SourceUnavailable(f"NVML: {_describe(exc)} (is the NVIDIA driver installed?)") from None
        except OSError as exc:  # libnvidia-ml.so not found on some platforms
            raise SourceUnavailable(f"NVML: library not found ({exc})") from None

    def shutdown(self) -> None:
        try:
            self.nvml.nvmlShutdown()
        except self.nvml.NVMLError:
            pass

    def query(self, fn_name: str, *args) -> Any:
        """Call ``pynvml.<fn_name>(*args)``; ``NA`` if the GPU doesn't support it.

        Any other NVML error (GPU lost, unknown) propagates so the sampler can
        mark the gap and carry on.
        """
        try:
            value = getattr(self.nvml, fn_name)(*args)
        except self.nvml.NVMLError as exc:
            if _code(exc) in (
                self.nvml.NVML_ERROR_NOT_SUPPORTED,
                self.nvml.NVML_ERROR_FUNCTION_NOT_FOUND,
                self.nvml.NVML_ERROR_NO_PERMISSION,
                self.nvml.NVML_ERROR_INVALID_ARGUMENT,
            ):
                return NA
            raise
        return value.decode() if isinstance(value, bytes) else value

    def driver_version(self) -> Any:
        return self.query("nvmlSystemGetDriverVersion")


def _code(exc) -> int | None:
    return getattr(exc, "value", None)


def _describe(exc) -> str:
    try:
        return str(exc)
    except Exception:  # noqa: BLE001 - pynvml's __str__ itself calls into the library
        return f"NVML error {_code(exc)}"


class NvmlDevice:
    """One GPU. Every method returns ``NA`` for what this GPU can't report."""

    def __init__(self, library: NvmlLibrary, index: int):
        library.init()
        self.lib = library
        self.index = index
        try:
            self.handle = library.nvml.nvmlDeviceGetHandleByIndex(index)
        except library.nvml.NVMLError as exc:
            library.shutdown()
            raise SourceUnavailable(f"NVML GPU {index}: {_describe(exc)}") from None
        self._instant_supported: bool | None = None

    def _q(self, fn_name: str, *args) -> Any:
        return self.lib.query(fn_name, self.handle, *args)

    def name(self) -> Any:
        return self._q("nvmlDeviceGetName")

    def uuid(self) -> Any:
        return self._q("nvmlDeviceGetUUID")

    def architecture(self) -> Any:
        arch = self._q("nvmlDeviceGetArchitecture")
        if arch is NA:
            return NA
        for attr in dir(self.lib.nvml):
            if attr.startswith("NVML_DEVICE_ARCH_") and getattr(self.lib.nvml, attr) == arch:
                return attr.removeprefix("NVML_DEVICE_ARCH_")
        return NA

    def power_limit_w(self) -> Any:
        mw = self._q("nvmlDeviceGetPowerManagementLimit")
        return NA if mw is NA else mw / 1000

    def total_energy_mj(self) -> Any:
        """Energy since the driver loaded, mJ; updates about every 100 ms."""
        return self._q("nvmlDeviceGetTotalEnergyConsumption")

    def power_instant_mw(self) -> Any:
        """Instantaneous board power from the field API, checking the entry's own return code."""
        if self._instant_supported is False:
            return NA
        nvml = self.lib.nvml
        values = self._q("nvmlDeviceGetFieldValues", [nvml.NVML_FI_DEV_POWER_INSTANT])
        if values is NA:
            self._instant_supported = False
            return NA
        entry = values[0]
        if entry.nvmlReturn != nvml.NVML_SUCCESS:
            if entry.nvmlReturn == nvml.NVML_ERROR_NOT_SUPPORTED:
                self._instant_supported = False
                return NA
            raise nvml.NVMLError(entry.nvmlReturn)
        self._instant_supported = True
        return int(entry.value.uiVal)

    def power_usage_mw(self) -> Any:
        """``nvmlDeviceGetPowerUsage``: a 1 s average on Ampere and newer."""
        return self._q("nvmlDeviceGetPowerUsage")

    def sm_clock_mhz(self) -> Any:
        return self._q("nvmlDeviceGetClockInfo", self.lib.nvml.NVML_CLOCK_SM)

    def memory_clock_mhz(self) -> Any:
        return self._q("nvmlDeviceGetClockInfo", self.lib.nvml.NVML_CLOCK_MEM)

    def temperature_c(self) -> Any:
        return self._q("nvmlDeviceGetTemperature", self.lib.nvml.NVML_TEMPERATURE_GPU)

    def utilization_percent(self) -> Any:
        rates = self._q("nvmlDeviceGetUtilizationRates")
        return NA if rates is NA else rates.gpu

    def memory_used_mib(self) -> Any:
        mem = self._q("nvmlDeviceGetMemoryInfo")
        return NA if mem is NA else mem.used / (1 << 20)

    def persistence_mode(self) -> Any:
        mode = self._q("nvmlDeviceGetPersistenceMode")
        return NA if mode is NA else bool(mode)


class NvmlSource:
    """A GPU's board power and energy, as one power source."""

    counter_wrap_uj = None  # a 64-bit millijoule counter: it doesn't wrap in practice

    def __init__(self, device: NvmlDevice, clock_ns: Callable[[], int]):
        self.device = device
        self._clock_ns = clock_ns
        self.name = f"nvml:{device.index}"
        gpu = device.name()
        self.measures = f"GPU {device.index} {gpu if gpu is not NA else ''} (board power)".replace("  ", " ")
        self.has_counter = device.total_energy_mj() is not NA
        self.method = "counter" if self.has_counter else "sampled"
        try:
            self.power_field = self._pick_power_field()
        except SourceUnavailable:
            self.close()
            raise
        # Energy integrated from a 1 s average is smeared at both edges; a counter
        # (or the instant field) is judged by its own update interval instead.
        self.resolution_s = (
            ONE_SECOND_AVERAGE_RESOLUTION_S if not self.has_counter and self.power_field == "1s-average" else None
        )

    def _pick_power_field(self) -> str:
        if self.device.power_instant_mw() is not NA:
            return "instant"
        if self.device.power_usage_mw() is not NA:
            one_second = averages_over_one_second(self.device.architecture(), self.device.name())
            return "1s-average" if one_second else "average"
        raise SourceUnavailable(f"NVML GPU {self.device.index}: reports neither power nor energy")

    def read(self) -> PowerReading:
        t_ns = self._clock_ns()
        mw = self.device.power_instant_mw() if self.power_field == "instant" else self.device.power_usage_mw()
        counter_uj = None
        if self.has_counter:
            mj = self.device.total_energy_mj()
            counter_uj = None if mj is NA else int(mj) * 1000
        return PowerReading(t_ns, float("nan") if mw is NA else mw / 1000, counter_uj)

    def info(self) -> dict[str, Any]:
        d = self.device
        return _available(
            {
                "gpu_name": d.name(),
                "gpu_uuid": d.uuid(),
                "architecture": d.architecture(),
                "driver": d.lib.driver_version(),
                "power_limit_w": d.power_limit_w(),
                "persistence_mode": d.persistence_mode(),
                "power_field": self.power_field,
            }
        )

    def telemetry(self) -> dict[str, Any]:
        """Conditions that change during a run: clocks, temperature, load, memory."""
        d = self.device
        return _available(
            {
                "sm_clock_mhz": d.sm_clock_mhz(),
                "memory_clock_mhz": d.memory_clock_mhz(),
                "temperature_c": d.temperature_c(),
                "utilization_percent": d.utilization_percent(),
                "memory_used_mib": d.memory_used_mib(),
            }
        )

    def close(self) -> None:
        self.device.lib.shutdown()


def _available(facts: dict[str, Any]) -> dict[str, Any]:
    """The facts this GPU reports: N/A ones are left out, not shown as blanks."""
    return {k: v for k, v in facts.items() if v is not NA}


def nvml_sources(clock_ns: Callable[[], int], indices: list[int] | None = None, module=None) -> list[NvmlSource]:
    """Sources for every GPU (or the chosen ones). Raises SourceUnavailable without NVML."""
    library = NvmlLibrary(module)
    library.init()
    try:
        count = int(library.nvml.nvmlDeviceGetCount())
    finally:
        library.shutdown()
    if count == 0:
        raise SourceUnavailable("NVML: no NVIDIA GPU found")
    chosen = list(range(count)) if indices is None else indices
    for i in chosen:
        if not 0 <= i < count:
            raise SourceUnavailable(f"NVML: there is no GPU {i} (this machine has {count})")
    sources: list[NvmlSource] = []
    try:
        for i in chosen:
            sources.append(NvmlSource(NvmlDevice(library, i), clock_ns))
    except SourceUnavailable:
        for source in sources:
            source.close()
        raise
    return sources
