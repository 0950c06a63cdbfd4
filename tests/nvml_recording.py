"""The tests' NVML: ``install()`` makes the real ``pynvml`` module answer from the JSON
recording named by $TBDOCTOR_TEST_NVML_RECORDING (conftest's fake_gpu_env sets it, and
the CLI child the tests start calls ``install`` before tbdoctor runs). tbdoctor itself
reads no such variable. Errors are real ``pynvml.NVMLError``s.

Recording format: ``{"nvmlInit": {"error": "NVML_ERROR_DRIVER_NOT_LOADED"}}``
for a failing library, or ``{"nvmlSystemGetDriverVersion": "535.104.05",
"nvmlSystemGetCudaDriverVersion_v2": 12020, "devices": [{"nvmlDeviceGetName":
..., "nvmlDeviceGetMemoryInfo": {"total": bytes, "used": bytes}, ..., "migDevices":
[{"nvmlDeviceGetUUID": "MIG-..."}]}], "processNames": {"<pid>": "python"}}``; any
answer may be ``{"error": "NVML_ERROR_..."}``, and ``{"hang": true}`` never
returns.
"""

from __future__ import annotations

import json
import os
import threading
from types import SimpleNamespace

import pynvml

VARIABLE = "TBDOCTOR_TEST_NVML_RECORDING"


def install() -> None:
    """Replace pynvml's calls with the recording's answers, when the variable names one."""
    path = os.environ.get(VARIABLE)
    if not path:
        return
    recorded = Recorded.from_file(path)
    for name in dir(Recorded):
        if name.startswith("nvml"):
            setattr(pynvml, name, getattr(recorded, name))


class Recorded:
    """Answers pynvml's calls from a recording; errors are real ``pynvml.NVMLError``s."""

    def __init__(self, answers: dict):
        self._answers = answers

    @classmethod
    def from_file(cls, path: str) -> "Recorded":
        try:
            with open(path, encoding="utf-8") as fh:
                answers = json.load(fh)
        except (OSError, ValueError):
            answers = {"nvmlInit": {"error": "NVML_ERROR_UNKNOWN"}}
        return cls(answers if isinstance(answers, dict) else {})

    def _answer(self, source: dict, name: str):
        value = source.get(name, {"error": "NVML_ERROR_NOT_SUPPORTED"})
        if isinstance(value, dict) and value.get("hang"):
            threading.Event().wait()
        if isinstance(value, dict) and "error" in value:
            raise pynvml.NVMLError(getattr(pynvml, value["error"], pynvml.NVML_ERROR_UNKNOWN))
        return value

    def nvmlInit(self):
        self._answer({"nvmlInit": None, **self._answers}, "nvmlInit")

    def nvmlShutdown(self):
        pass

    def nvmlSystemGetDriverVersion(self):
        return self._answer(self._answers, "nvmlSystemGetDriverVersion")

    def nvmlSystemGetCudaDriverVersion_v2(self):
        return self._answer(self._answers, "nvmlSystemGetCudaDriverVersion_v2")

    def nvmlDeviceGetCount(self):
        return len(self._answers.get("devices", []))

    def nvmlDeviceGetHandleByIndex(self, index):
        return self._answers["devices"][index]

    def nvmlDeviceGetName(self, handle):
        return self._answer(handle, "nvmlDeviceGetName")

    def nvmlDeviceGetUUID(self, handle):
        return self._answer(handle, "nvmlDeviceGetUUID")

    def nvmlDeviceGetMemoryInfo(self, handle):
        return SimpleNamespace(**self._answer(handle, "nvmlDeviceGetMemoryInfo"))

    def nvmlDeviceGetCudaComputeCapability(self, handle):
        return tuple(self._answer(handle, "nvmlDeviceGetCudaComputeCapability"))

    def nvmlDeviceGetMigMode(self, handle):
        return list(self._answer(handle, "nvmlDeviceGetMigMode"))

    def nvmlDeviceGetPersistenceMode(self, handle):
        return self._answer(handle, "nvmlDeviceGetPersistenceMode")

    def nvmlDeviceGetPciInfo(self, handle):
        return SimpleNamespace(**self._answer(handle, "nvmlDeviceGetPciInfo"))

    def nvmlDeviceGetComputeMode(self, handle):
        return self._answer(handle, "nvmlDeviceGetComputeMode")

    def nvmlDeviceGetTotalEccErrors(self, handle, error_type, counter_type):
        return self._answer(handle, "nvmlDeviceGetTotalEccErrors")

    def nvmlDeviceGetRetiredPagesPendingStatus(self, handle):
        return self._answer(handle, "nvmlDeviceGetRetiredPagesPendingStatus")

    def nvmlDeviceGetRemappedRows(self, handle):
        return tuple(self._answer(handle, "nvmlDeviceGetRemappedRows"))

    def nvmlDeviceGetComputeRunningProcesses(self, handle):
        return [SimpleNamespace(**p) for p in self._answer(handle, "nvmlDeviceGetComputeRunningProcesses")]

    def nvmlSystemGetProcessName(self, pid):
        return self._answer(self._answers.get("processNames", {}), str(pid))

    def nvmlDeviceGetUtilizationRates(self, handle):
        return SimpleNamespace(**self._answer(handle, "nvmlDeviceGetUtilizationRates"))

    def nvmlDeviceGetCurrentClocksThrottleReasons(self, handle):
        return self._answer(handle, "nvmlDeviceGetCurrentClocksThrottleReasons")

    def nvmlDeviceGetCurrPcieLinkWidth(self, handle):
        return self._answer(handle, "nvmlDeviceGetCurrPcieLinkWidth")

    def nvmlDeviceGetMaxPcieLinkWidth(self, handle):
        return self._answer(handle, "nvmlDeviceGetMaxPcieLinkWidth")

    def nvmlDeviceGetCurrPcieLinkGeneration(self, handle):
        return self._answer(handle, "nvmlDeviceGetCurrPcieLinkGeneration")

    def nvmlDeviceGetMaxPcieLinkGeneration(self, handle):
        return self._answer(handle, "nvmlDeviceGetMaxPcieLinkGeneration")

    def nvmlDeviceGetMaxMigDeviceCount(self, handle):
        return len(self._answer(handle, "migDevices"))

    def nvmlDeviceGetMigDeviceHandleByIndex(self, handle, index):
        return self._answer(handle, "migDevices")[index]

    def nvmlDeviceGetGpuFabricInfo(self, handle, info):
        for key, value in self._answer(handle, "nvmlDeviceGetGpuFabricInfo").items():
            setattr(info, key, value)
        return pynvml.NVML_SUCCESS
