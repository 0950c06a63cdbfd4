"""NVML, NVIDIA's management library, through ``nvidia-ml-py`` (``pynvml``).

``query(lib)`` reads everything tbdoctor wants from ``lib`` (``library()``: pynvml);
``probe_with_timeout`` bounds it, since a wedged driver can hang any NVML call. The
tests make pynvml answer from recordings (tests/nvml_recording.py).
"""

from __future__ import annotations

import threading

import pynvml

_MIB = 1024 * 1024


def library():
    """The NVML binding ``query`` reads (pynvml)."""
    return pynvml


def _text(value) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _error(exc: Exception) -> dict:
    value = getattr(exc, "value", None)
    code = next((name for name in dir(pynvml) if name.startswith("NVML_ERROR_") and getattr(pynvml, name) == value),
                None)
    return {"status": "failed", "error": str(exc) or type(exc).__name__, "code": code}


def _optional(call, *args):
    """An answer that some GPUs or platforms do not support: None instead of an error."""
    try:
        return call(*args)
    except pynvml.NVMLError:
        return None


def _device(lib, index: int) -> dict:
    handle = lib.nvmlDeviceGetHandleByIndex(index)
    memory = _optional(lib.nvmlDeviceGetMemoryInfo, handle)
    cc = _optional(lib.nvmlDeviceGetCudaComputeCapability, handle)
    mig = _optional(lib.nvmlDeviceGetMigMode, handle)
    persistence = _optional(lib.nvmlDeviceGetPersistenceMode, handle)
    pci = _optional(lib.nvmlDeviceGetPciInfo, handle)
    return {
        "index": index,
        "name": _text(lib.nvmlDeviceGetName(handle)),
        "uuid": _text(_optional(lib.nvmlDeviceGetUUID, handle) or "") or None,
        "memory_total_mib": int(memory.total) // _MIB if memory else None,
        "memory_used_mib": int(memory.used) // _MIB if memory else None,
        "compute_capability": f"{cc[0]}.{cc[1]}" if cc else None,
        "mig_mode": (("enabled" if mig[0] else "disabled") if mig else None),
        "persistence_mode": (("enabled" if persistence else "disabled") if persistence is not None else None),
        "pci_bus_id": _text(pci.busId) if pci is not None and getattr(pci, "busId", None) else None,
        **_health(lib, handle, bool(mig and mig[0])),
    }


_COMPUTE_MODES = {0: "default", 1: "exclusive-thread", 2: "prohibited", 3: "exclusive-process"}
_FABRIC_STATES = {0: "not-supported", 1: "not-started", 2: "in-progress", 3: "completed"}


def _ask(lib, name: str, *args):
    """An optional answer by name: None where the GPU, the driver or the binding (too old) has none."""
    try:
        return getattr(lib, name)(*args)
    except (pynvml.NVMLError, AttributeError):
        return None


def _processes(lib, handle) -> list[dict] | None:
    running = _ask(lib, "nvmlDeviceGetComputeRunningProcesses", handle)
    if running is None:
        return None
    found = []
    for proc in running:
        used = getattr(proc, "usedGpuMemory", None)  # None where the driver cannot tell (containers, WDDM)
        name = _ask(lib, "nvmlSystemGetProcessName", proc.pid)
        found.append({"pid": int(proc.pid), "name": _text(name) if name else None,
                      "used_mib": int(used) // _MIB if isinstance(used, int) and used >= 0 else None})
    return found


def _mig_devices(lib, handle) -> list[str] | None:
    count = _ask(lib, "nvmlDeviceGetMaxMigDeviceCount", handle)
    if count is None:
        return None
    found = []
    for index in range(count):
        mig = _ask(lib, "nvmlDeviceGetMigDeviceHandleByIndex", handle, index)  # empty slots: not found
        uuid = _ask(lib, "nvmlDeviceGetUUID", mig) if mig is not None else None
        if uuid:
            found.append(_text(uuid))
    return found


def _fabric(lib, handle) -> dict | None:
    """NVSwitch fabric registration (Hopper and newer; None where NVML has no answer)."""
    make = getattr(pynvml, "c_nvmlGpuFabricInfo_t", None)
    info = make() if make else None
    if info is None or _ask(lib, "nvmlDeviceGetGpuFabricInfo", handle, info) is None:
        return None
    return {"state": _FABRIC_STATES.get(info.state, str(info.state)),
            "status": None if info.status == pynvml.NVML_SUCCESS else str(pynvml.NVMLError(info.status))}


def _throttle(lib, handle) -> int | None:
    """Clock event reasons (R535+ name), else the older throttle-reasons call; the bits are the same."""
    reasons = _ask(lib, "nvmlDeviceGetCurrentClocksEventReasons", handle)
    return reasons if reasons is not None else _ask(lib, "nvmlDeviceGetCurrentClocksThrottleReasons", handle)


def _health(lib, handle, mig_enabled: bool) -> dict:
    """Node-health fields (DCGM's deployment checks); each None where the GPU or driver has no answer."""
    mode = _ask(lib, "nvmlDeviceGetComputeMode", handle)
    pending = _ask(lib, "nvmlDeviceGetRetiredPagesPendingStatus", handle)
    rows = _ask(lib, "nvmlDeviceGetRemappedRows", handle)
    util = _ask(lib, "nvmlDeviceGetUtilizationRates", handle)
    pcie = [_ask(lib, f"nvmlDevice{name}", handle) for name in (
        "GetCurrPcieLinkWidth", "GetMaxPcieLinkWidth", "GetCurrPcieLinkGeneration", "GetMaxPcieLinkGeneration")]
    return {
        "compute_mode": _COMPUTE_MODES.get(mode) if mode is not None else None,
        "ecc_uncorrected_volatile": _ask(lib, "nvmlDeviceGetTotalEccErrors", handle,
                                         pynvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED, pynvml.NVML_VOLATILE_ECC),
        "retired_pages_pending": bool(pending) if pending is not None else None,
        "remapped_rows": (dict(zip(("correctable", "uncorrectable", "pending", "failed"),
                                   (int(rows[0]), int(rows[1]), bool(rows[2]), bool(rows[3])))) if rows else None),
        "processes": _processes(lib, handle),
        "utilization_pct": int(util.gpu) if util is not None else None,
        "throttle_reasons": _throttle(lib, handle),
        "pcie": (dict(zip(("width", "width_max", "gen", "gen_max"), pcie))
                 if any(v is not None for v in pcie) else None),
        "mig_devices": _mig_devices(lib, handle) if mig_enabled else None,
        "fabric": _fabric(lib, handle),
    }


def query(lib) -> dict:
    """Driver and per-GPU facts from NVML: {"status": "ok", ...} or {"status": "failed", "error", "code"}."""
    try:
        lib.nvmlInit()
    except pynvml.NVMLError as exc:
        return _error(exc)
    except OSError as exc:  # a broken libnvidia-ml.so that cannot be loaded
        return {"status": "failed", "error": str(exc), "code": None}
    try:
        cuda = _optional(lib.nvmlSystemGetCudaDriverVersion_v2)
        return {
            "status": "ok",
            "driver_version": _text(lib.nvmlSystemGetDriverVersion()),
            "cuda_driver_version": f"{cuda // 1000}.{cuda % 1000 // 10}" if isinstance(cuda, int) and cuda else None,
            "gpus": [_device(lib, i) for i in range(lib.nvmlDeviceGetCount())],
        }
    except pynvml.NVMLError as exc:
        return _error(exc)
    finally:
        try:
            lib.nvmlShutdown()
        except pynvml.NVMLError:
            pass


def query_bounded(timeout: float) -> dict:
    """``query(library())`` in a daemon thread; a hung driver becomes {"status": "timeout"}."""
    box: dict = {}

    def work() -> None:
        try:
            box["result"] = query(library())
        except Exception as exc:  # a binding bug must become a fact, not a crash
            box["result"] = {"status": "failed", "error": f"{type(exc).__name__}: {exc}", "code": None}

    thread = threading.Thread(target=work, daemon=True, name="tbdoctor-nvml")
    thread.start()
    thread.join(timeout)
    return box.get("result") or {"status": "timeout", "error": f"NVML did not answer within {timeout:.0f} s",
                                 "code": None}
