"""Set an NVIDIA GPU's power limit for a sweep, and always put the original back.

``nvmlDeviceSetPowerManagementLimit`` needs root. The limiter reads the
original limit and the allowed range first, refuses values outside it
before anything changes, says plainly when setting isn't permitted, and
restores the original on ``restore()`` (the sweep calls it at the end and
on any failure; it is also a context manager).
"""

from __future__ import annotations

from ..errors import TpwError
from .base import NA
from .nvml import NvmlDevice, NvmlLibrary, _code

NOT_PERMITTED = (
    "setting a GPU power limit needs root: run the sweep with sudo, or have an administrator allow it "
    "(nvidia-smi -pl works only as root too)"
)


class PowerLimiter:
    def __init__(self, gpu_index: int = 0, module=None):
        self.library = NvmlLibrary(module)
        try:
            self.device = NvmlDevice(self.library, gpu_index)
        except Exception as exc:  # noqa: BLE001 - SourceUnavailable and friends: one message
            raise TpwError(f"power limits: {exc}") from None
        self.index = gpu_index
        self.original_w = self.device.power_limit_w()
        if self.original_w is NA:
            self.close()
            raise TpwError(f"power limits: GPU {gpu_index} doesn't report its power limit")
        constraints = self.device.lib.query("nvmlDeviceGetPowerManagementLimitConstraints", self.device.handle)
        self.range_w = None if constraints is NA else (constraints[0] / 1000, constraints[1] / 1000)
        self.current_w = self.original_w

    def check(self, limits_w: list[float]) -> None:
        """Refuse values the GPU won't take, before the sweep changes anything."""
        if self.range_w is None:
            return
        low, high = self.range_w
        bad = [w for w in limits_w if not low <= w <= high]
        if bad:
            raise TpwError(
                f"power limits {', '.join(f'{w:g} W' for w in bad)} are outside what GPU {self.index} "
                f"accepts ({low:g} to {high:g} W)"
            )

    def set(self, watts: float) -> None:
        nvml = self.library.nvml
        try:
            nvml.nvmlDeviceSetPowerManagementLimit(self.device.handle, int(round(watts * 1000)))
        except nvml.NVMLError as exc:
            if _code(exc) == nvml.NVML_ERROR_NO_PERMISSION:
                raise TpwError(NOT_PERMITTED) from None
            raise TpwError(f"GPU {self.index}: could not set its power limit to {watts:g} W ({exc})") from None
        self.current_w = watts

    def restore(self) -> None:
        """The original limit back (quietly a no-op when nothing was changed)."""
        if self.current_w != self.original_w:
            self.set(self.original_w)

    def close(self) -> None:
        self.library.shutdown()

    def __enter__(self) -> PowerLimiter:
        return self

    def __exit__(self, *exc) -> None:
        try:
            self.restore()
        finally:
            self.close()
