"""What the operating system says about GPUs and their drivers, read from files (no NVML,
no nvidia-smi): the loaded kernel module, device nodes, PCI display devices,
WSL2, containers, the visible-devices variables, and non-NVIDIA accelerators
(AMD through ROCm, Apple silicon through MPS).

Every reader returns None for "could not tell" (no /proc on macOS, an
unreadable file) rather than False.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import sys
from pathlib import Path
from typing import Callable

_VENDORS = {"0x10de": "nvidia", "0x1002": "amd"}
_DISPLAY_CLASSES = ("0x0300", "0x0302", "0x0380")  # VGA, 3D controller, other display


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def parse_module_version(text: str | None) -> str | None:
    """"535.104.05" from /proc/driver/nvidia/version (proprietary or open kernel module)."""
    match = re.search(r"Kernel Module\s+(?:for \S+\s+)?([0-9][0-9.]+)", text or "")
    return match[1] if match else None


def kernel_module_version() -> str | None:
    """The loaded nvidia kernel module's version, None when no module is loaded."""
    return parse_module_version(_read("/proc/driver/nvidia/version"))


def kernel_modules() -> dict | None:
    """{"nvidia", "nvidia_uvm", "nouveau": bool} from /proc/modules (or /sys/module), None when unreadable."""
    names = ("nvidia", "nvidia_uvm", "nouveau")
    text = _read("/proc/modules")
    if text is not None:
        loaded = {line.split(" ", 1)[0] for line in text.splitlines()}
        return {name: name in loaded for name in names}
    if os.path.isdir("/sys/module"):
        return {name: os.path.isdir(f"/sys/module/{name}") for name in names}
    return None


def fabric_manager_running() -> bool | None:
    """Whether an nv-fabricmanager process runs (from /proc/*/comm); None off Linux."""
    if not os.path.isdir("/proc") or not sys.platform.startswith("linux"):
        return None
    for pid in (p for p in os.listdir("/proc") if p.isdigit()):
        if (_read(f"/proc/{pid}/comm") or "").strip() == "nv-fabricmanager":
            return True
    return False


_XID = re.compile(r"NVRM: Xid \((?:PCI:)?([^)]*)\):\s*(\d+),?\s*(.*)")


def xid_events(run: Callable, timeout: float) -> dict:
    """Xid errors in the kernel log through `dmesg` (often root only): {"readable", "error", "events"}."""
    exe = shutil.which("dmesg")
    if not exe or not sys.platform.startswith("linux"):
        return {"readable": False, "error": "no dmesg", "events": []}
    result = run([exe], timeout)
    if not result.ok:
        return {"readable": False, "error": result.failure() or "dmesg failed", "events": []}
    events = [{"pci": m[1], "xid": int(m[2]), "text": m[0][:300]}
              for m in map(_XID.search, (result.stdout or "").splitlines()) if m]
    return {"readable": True, "error": None, "events": events[-50:]}


def device_nodes() -> list[str] | None:
    """Names of /dev/nvidia* nodes (nvidia0, nvidiactl, nvidia-uvm, ...); None off Linux."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return sorted(n for n in os.listdir("/dev") if n.startswith("nvidia"))
    except OSError:
        return None


def pci_display_devices() -> list[dict] | None:
    """NVIDIA and AMD display-class PCI devices from sysfs, with the kernel driver bound to each."""
    root = "/sys/bus/pci/devices"
    if not os.path.isdir(root):
        return None
    found = []
    for slot in sorted(os.listdir(root)):
        vendor = (_read(f"{root}/{slot}/vendor") or "").strip()
        klass = (_read(f"{root}/{slot}/class") or "").strip()
        if vendor not in _VENDORS or not klass.startswith(_DISPLAY_CLASSES):
            continue
        driver = os.path.realpath(f"{root}/{slot}/driver") if os.path.exists(f"{root}/{slot}/driver") else None
        found.append({"slot": slot, "vendor": _VENDORS[vendor], "device_id": (_read(f"{root}/{slot}/device") or "").strip(),
                      "class": klass, "driver": os.path.basename(driver) if driver else None})
    return found


def wsl() -> dict:
    """WSL2: the Windows driver's libcuda stub and /dev/dxg replace the Linux driver and /dev/nvidia*."""
    version = (_read("/proc/version") or "").lower()
    detected = "microsoft" in version or "wsl" in version or bool(os.environ.get("WSL_DISTRO_NAME"))
    libcuda = next((p for p in ("/usr/lib/wsl/lib/libcuda.so.1", "/usr/lib/wsl/lib/libcuda.so") if os.path.exists(p)),
                   None)
    return {"detected": detected, "libcuda": libcuda, "dxg": os.path.exists("/dev/dxg")}


def container() -> str | None:
    """"docker" / "podman" when tbdoctor runs in a container, else None."""
    if os.path.exists("/.dockerenv"):
        return "docker"
    if os.path.exists("/run/.containerenv"):
        return "podman"
    return None


def visible_devices() -> dict:
    return {name: os.environ.get(name) for name in ("CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES")}


def _rocm_names(run: Callable, timeout: float) -> list[str]:
    smi = shutil.which("rocm-smi")
    if not smi:
        return []
    result = run([smi, "--showproductname"], timeout)
    names = []
    for line in (result.stdout or "").splitlines() if result.ok else ():
        match = re.search(r"GPU\[(\d+)\]\s*:\s*Card (?:Series|SKU|series)\s*:\s*(.+)", line)
        if match and match[2].strip() not in names:
            names.append(match[2].strip())
    return names


def other_accelerators(run: Callable, timeout: float, pci: list[dict] | None) -> list[dict]:
    """AMD GPUs (rocm-smi, /dev/kfd, PCI) and Apple silicon (MPS), each named."""
    found = []
    amd_pci = [d for d in pci or () if d["vendor"] == "amd"]
    if os.path.exists("/dev/kfd") or amd_pci or shutil.which("rocm-smi"):
        names = _rocm_names(run, timeout)
        source = "rocm-smi" if names else ("/dev/kfd" if os.path.exists("/dev/kfd") else "pci")
        for name in names or [f"AMD GPU (PCI device {d['device_id']})" for d in amd_pci] or ["AMD GPU (ROCm /dev/kfd)"]:
            found.append({"vendor": "amd", "name": name, "backend": "rocm", "source": source})
    if sys.platform == "darwin" and platform.machine() == "arm64":
        result = run(["sysctl", "-n", "machdep.cpu.brand_string"], timeout)
        name = (result.stdout or "").strip() if result.ok else ""
        found.append({"vendor": "apple", "name": name or "Apple silicon", "backend": "mps", "source": "sysctl"})
    return found
