"""A fake of the ``pynvml`` module for machines without an NVIDIA GPU.

Made with ``create_autospec`` from the real module (as Zeus does), so every
call must match the real function's signature; constants, the NVMLError
classes and the ctypes structs are the real ones. Each fake GPU says which
metrics it supports and can be lost mid-run.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from types import SimpleNamespace
from unittest import mock

import pynvml


@dataclass
class FakeGpu:
    name: str = "NVIDIA H100 80GB HBM3"
    uuid: str = "GPU-11111111-2222-3333-4444-555555555555"
    arch: int = pynvml.NVML_DEVICE_ARCH_HOPPER
    power_mw: int = 250_000
    energy_mj: int = 1_000_000
    power_limit_mw: int = 700_000
    unsupported: set[str] = field(default_factory=set)  # NVML function names, or "instant_field"
    lost: bool = False
    limit_range_mw: tuple[int, int] = (200_000, 700_000)
    root: bool = True  # setting a power limit needs it
    limits_set: list[int] = field(default_factory=list)  # every limit set, in mW, in order


def _error(code: int) -> pynvml.NVMLError:
    return pynvml.NVMLError(code)


def make_fake_nvml(gpus: list[FakeGpu], *, driver_missing: bool = False):
    fake = mock.create_autospec(pynvml)
    # Keep the real data parts of the module: constants, errors, structs.
    for name, value in vars(pynvml).items():
        constant = name.startswith("NVML_") and isinstance(value, int)
        if constant or inspect.isclass(value) and (issubclass(value, Exception) or name.startswith("c_nvml")):
            setattr(fake, name, value)

    handles = {f"handle-{i}": gpu for i, gpu in enumerate(gpus)}

    def gpu_for(handle, fn: str) -> FakeGpu:
        gpu = handles[handle]
        if gpu.lost:
            raise _error(pynvml.NVML_ERROR_GPU_IS_LOST)
        if fn in gpu.unsupported:
            raise _error(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return gpu

    def init():
        if driver_missing:
            raise _error(pynvml.NVML_ERROR_LIBRARY_NOT_FOUND)

    def field_values(handle, field_ids):
        gpu = gpu_for(handle, "nvmlDeviceGetFieldValues")
        values = (pynvml.c_nvmlFieldValue_t * len(field_ids))()
        for i, field_id in enumerate(field_ids):
            values[i].fieldId = field_id
            if field_id == pynvml.NVML_FI_DEV_POWER_INSTANT and "instant_field" not in gpu.unsupported:
                values[i].nvmlReturn = pynvml.NVML_SUCCESS
                values[i].value.uiVal = gpu.power_mw
            else:
                values[i].nvmlReturn = pynvml.NVML_ERROR_NOT_SUPPORTED
        return values

    def simple(fn: str, getter):
        return lambda handle, *args: getter(gpu_for(handle, fn), *args)

    def set_limit(handle, limit_mw):
        gpu = gpu_for(handle, "nvmlDeviceSetPowerManagementLimit")
        if not gpu.root:
            raise _error(pynvml.NVML_ERROR_NO_PERMISSION)
        if not gpu.limit_range_mw[0] <= limit_mw <= gpu.limit_range_mw[1]:
            raise _error(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        gpu.power_limit_mw = limit_mw
        gpu.limits_set.append(limit_mw)

    fake.nvmlDeviceSetPowerManagementLimit.side_effect = set_limit
    fake.nvmlDeviceGetPowerManagementLimitConstraints.side_effect = simple(
        "nvmlDeviceGetPowerManagementLimitConstraints", lambda g: list(g.limit_range_mw)
    )
    fake.nvmlInit.side_effect = init
    fake.nvmlShutdown.return_value = None
    fake.nvmlDeviceGetCount.side_effect = lambda: len(gpus)
    fake.nvmlDeviceGetHandleByIndex.side_effect = lambda i: f"handle-{i}"
    fake.nvmlSystemGetDriverVersion.return_value = "580.65.06"
    fake.nvmlDeviceGetFieldValues.side_effect = field_values
    for fn, getter in {
        "nvmlDeviceGetName": lambda g: g.name,
        "nvmlDeviceGetUUID": lambda g: g.uuid,
        "nvmlDeviceGetArchitecture": lambda g: g.arch,
        "nvmlDeviceGetPowerUsage": lambda g: g.power_mw,
        "nvmlDeviceGetTotalEnergyConsumption": lambda g: g.energy_mj,
        "nvmlDeviceGetPowerManagementLimit": lambda g: g.power_limit_mw,
        "nvmlDeviceGetClockInfo": lambda g, kind: 1980 if kind == pynvml.NVML_CLOCK_SM else 2619,
        "nvmlDeviceGetTemperature": lambda g, sensor: 54,
        "nvmlDeviceGetUtilizationRates": lambda g: SimpleNamespace(gpu=97, memory=40),
        "nvmlDeviceGetMemoryInfo": lambda g: SimpleNamespace(used=3 << 30, total=80 << 30, free=77 << 30),
        "nvmlDeviceGetPersistenceMode": lambda g: 1,
    }.items():
        getattr(fake, fn).side_effect = simple(fn, getter)
    return fake
