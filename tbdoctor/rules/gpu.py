"""Rules of the GPU section (gpu.*): which GPUs the driver lists, and why an NVIDIA GPU that
is there cannot be used (driver not loaded, device nodes missing, driver/library
mismatch, NVML or nvidia-smi failing or hanging, CUDA_VISIBLE_DEVICES hiding them). Pure.

The rules that combine the GPU with a framework's build live with the frameworks;
helpers they share (``platform_of``, ``gpu_problem``) are here.
"""

from __future__ import annotations

import re

from tbdoctor.findings import ERROR, INFO, OK, WARNING, Finding, Fix
from tbdoctor.rules.common import manual


def platform_of(facts: dict) -> str:
    """The driver table that applies: "windows" on Windows and in WSL2 (the Windows driver), else "linux"."""
    gpu = facts.get("gpu") or {}
    if (facts.get("host_platform") or "").startswith("win") or (gpu.get("wsl") or {}).get("detected"):
        return "windows"
    return "linux"


def _smi(gpu: dict) -> dict:
    return gpu.get("nvidia_smi") or {}


def _nvidia_pci(gpu: dict) -> list[dict]:
    return [d for d in ((gpu.get("driver") or {}).get("pci_devices") or ()) if d.get("vendor") == "nvidia"]


def _module_loaded(gpu: dict) -> bool | None:
    driver = gpu.get("driver") or {}
    if driver.get("kernel_module_version"):
        return True
    return (driver.get("modules") or {}).get("nvidia")


_NVML_NO_DRIVER = (None, "NVML_ERROR_LIBRARY_NOT_FOUND", "NVML_ERROR_DRIVER_NOT_LOADED")


def gpu_problem(facts: dict) -> str | None:
    """Why the NVIDIA driver cannot list GPUs that are (or may be) there, as a finding id; None when fine."""
    gpu = facts.get("gpu")
    if not gpu or gpu.get("gpus"):
        return None
    smi, nvml = _smi(gpu).get("status"), gpu.get("nvml") or {}
    nvml_code = nvml.get("code")
    wsl = (gpu.get("wsl") or {}).get("detected")
    nodes = (gpu.get("driver") or {}).get("device_nodes")
    if smi == "version-mismatch" or nvml_code == "NVML_ERROR_LIB_RM_VERSION_MISMATCH":
        return "gpu.driver-library-mismatch"
    if not wsl and nodes is not None and not any(re.fullmatch(r"nvidia\d+", n) for n in nodes) \
            and _module_loaded(gpu) and (smi in (None, "not-found", "driver-unreachable", "nvml-failed")
                                         or nvml_code == "NVML_ERROR_DRIVER_NOT_LOADED"):
        return "gpu.device-nodes-missing"
    if smi == "driver-unreachable" or (nvml_code == "NVML_ERROR_DRIVER_NOT_LOADED" and smi != "no-devices") \
            or (_nvidia_pci(gpu) and _module_loaded(gpu) is False and not wsl):
        return "gpu.driver-not-loaded"
    if smi == "no-devices":
        return "gpu.driver-sees-no-gpu"
    if smi in ("timeout", "garbage", "failed", "gpu-lost", "nvml-failed") or nvml.get("status") == "timeout" \
            or (nvml.get("status") == "failed" and nvml_code not in _NVML_NO_DRIVER):
        return "gpu.driver-query-failed"
    return None


def _gib(mib) -> str:
    return f"{mib / 1024:.0f} GiB" if isinstance(mib, (int, float)) else "? GiB"


def devices(facts: dict) -> list[Finding]:
    gpu = facts.get("gpu")
    if not gpu:
        return []
    driver = gpu.get("driver_version")
    if gpu.get("gpus"):
        names: dict[str, int] = {}
        for g in gpu["gpus"]:
            label = f"{g.get('name')} (CC {g.get('compute_capability') or '?'}, {_gib(g.get('memory_total_mib'))})"
            names[label] = names.get(label, 0) + 1
        listed = ", ".join(f"{n} × {label}" if n > 1 else label for label, n in names.items())
        cuda = f", CUDA {gpu['cuda_driver_version']}" if gpu.get("cuda_driver_version") else ""
        lines = [f"GPU {g.get('index')}: {g.get('name')}, compute capability {g.get('compute_capability') or 'unknown'}"
                 f" (from {g.get('compute_capability_source') or '-'}), memory {g.get('memory_used_mib')} / "
                 f"{g.get('memory_total_mib')} MiB, MIG {g.get('mig_mode') or 'n/a'}, persistence "
                 f"{g.get('persistence_mode') or 'n/a'}" for g in gpu["gpus"]]
        return [Finding("gpu.devices", OK, f"{listed}; driver {driver}{cuda}",
                        detail=f"Listed by {gpu.get('source')}.\n" + "\n".join(lines))]
    others = gpu.get("other_accelerators") or []
    checked = [f"NVML: {(gpu.get('nvml') or {}).get('error') or (gpu.get('nvml') or {}).get('status')}",
               f"nvidia-smi: {_smi(gpu).get('status') or 'not run'}"]
    nodes = (gpu.get("driver") or {}).get("device_nodes")
    if nodes is not None:
        checked.append(f"/dev/nvidia*: {', '.join(nodes) or 'none'}")
    if others:
        named = "; ".join(f"{a['name']} ({a['backend'].upper()})" for a in others)
        return [Finding("gpu.devices", INFO, f"No NVIDIA GPU; {named}",
                        detail="\n".join(checked + [f"{a['vendor']} accelerator found via {a['source']}" for a in others]))]
    if gpu_problem(facts):
        return [Finding("gpu.devices", INFO, "No NVIDIA GPU listed", detail="\n".join(checked))]
    return [Finding("gpu.devices", INFO, "No NVIDIA GPU or driver found: CPU only", detail="\n".join(checked))]


def _driver_fixes(gpu: dict) -> tuple[str, tuple[Fix, ...]]:
    """Hint and fixes for a driver that does not answer, by where tbdoctor runs."""
    if (gpu.get("wsl") or {}).get("detected"):
        return ("In WSL2 the driver is the Windows one: update the NVIDIA driver on Windows, remove any Linux "
                "nvidia-driver package inside WSL, and keep /usr/lib/wsl/lib on the loader path.",
                (manual("wsl --update"),))
    if gpu.get("container"):
        return ("Inside a container the host's driver is injected by the NVIDIA Container Toolkit: start the "
                "container with GPU access (host: nvidia-container-toolkit installed, `nvidia-ctk runtime configure "
                "--runtime=docker`, docker restarted). Never install the kernel driver in the image.",
                (manual("docker run --gpus all ..."),))
    nouveau = ((gpu.get("driver") or {}).get("modules") or {}).get("nouveau") or any(
        d.get("driver") == "nouveau" for d in _nvidia_pci(gpu))
    hint = ("Load the module; if that fails, the module was not built for the running kernel (kernel update "
            "without DKMS rebuild, Secure Boot rejecting an unsigned module): rebuild it with "
            "`sudo dkms autoinstall` or reinstall the driver package, then reboot.")
    if nouveau:
        hint = ("The open-source nouveau driver holds the GPU: blacklist it, rebuild the initramfs and reboot, "
                "then install the NVIDIA driver. ") + hint
        return hint, (manual("echo 'blacklist nouveau' | sudo tee /etc/modprobe.d/blacklist-nouveau.conf "
                             "&& sudo update-initramfs -u && sudo reboot"),)
    return hint, (manual("sudo modprobe nvidia"),)


def driver_state(facts: dict) -> list[Finding]:
    gpu = facts.get("gpu")
    problem = gpu_problem(facts)
    if not problem:
        return []
    smi = _smi(gpu)
    seen = [f"nvidia-smi ({smi.get('path') or 'not found'}): {smi.get('status') or 'not run'}"
            + (f" — {smi['error']}" if smi.get("error") else ""),
            f"NVML: {(gpu.get('nvml') or {}).get('error') or 'n/a'}"]
    driver = gpu.get("driver") or {}
    seen.append(f"kernel module: {driver.get('kernel_module_version') or ('loaded' if _module_loaded(gpu) else 'not loaded')}")
    if driver.get("device_nodes") is not None:
        seen.append(f"/dev/nvidia*: {', '.join(driver['device_nodes']) or 'none'}")
    seen += [f"PCI {d['slot']}: NVIDIA device {d['device_id']}, kernel driver {d['driver'] or 'none'}"
             for d in _nvidia_pci(gpu)]
    if smi.get("output_tail"):
        seen.append("nvidia-smi printed:\n" + smi["output_tail"])
    detail = "\n".join(seen)
    if problem == "gpu.driver-library-mismatch":
        return [Finding(problem, ERROR, "NVIDIA driver/library version mismatch: the loaded kernel module and the "
                        "user-space driver differ", detail=detail,
                        hint="The driver package was upgraded but the old kernel module is still loaded. Reboot "
                             "(or unload and reload the nvidia modules); `apt-mark hold` the driver to stop "
                             "unattended upgrades repeating it.", fixes=(manual("sudo reboot"),))]
    if problem == "gpu.device-nodes-missing":
        if gpu.get("container"):
            hint, fixes = _driver_fixes(gpu)
        else:
            hint, fixes = ("The module is loaded but /dev/nvidia0 and friends were never created; create them "
                           "(nvidia-modprobe ships with the driver) or reboot.", (manual("sudo nvidia-modprobe -c 0 -u"),))
        return [Finding(problem, ERROR, "The NVIDIA kernel module is loaded but there are no /dev/nvidia* device "
                        "nodes: no program can reach the GPU", detail=detail, hint=hint, fixes=fixes)]
    if problem == "gpu.driver-not-loaded":
        hint, fixes = _driver_fixes(gpu)
        title = ("NVIDIA driver not loaded: nvidia-smi couldn't communicate with the NVIDIA driver"
                 if smi.get("status") == "driver-unreachable"
                 else "NVIDIA GPU present but the NVIDIA driver is not loaded")
        return [Finding(problem, ERROR, title, detail=detail, hint=hint, fixes=fixes)]
    if problem == "gpu.driver-sees-no-gpu":
        return [Finding(problem, WARNING, "The NVIDIA driver is loaded but finds no GPU", detail=detail,
                        hint="A GPU the driver no longer supports is ignored: Maxwell, Pascal and Volta need the "
                             "580 legacy branch (drivers 590+ ignore them), Kepler needs 470. Check "
                             "`sudo dmesg | grep NVRM`; in a VM, check the GPU passthrough.",
                        fixes=(manual("sudo dmesg | grep -i nvrm"),))]
    status, nvml = smi.get("status"), gpu.get("nvml") or {}
    titles = {"timeout": f"nvidia-smi hangs: {smi.get('error') or 'no answer'}",
              "gpu-lost": "nvidia-smi reports a lost GPU (fallen off the bus)",
              "garbage": "nvidia-smi printed output that is not what nvidia-smi prints",
              "nvml-failed": "nvidia-smi failed to initialize NVML",
              "failed": f"nvidia-smi failed: {smi.get('error')}"}
    title = titles.get(status) or (f"NVML hangs: {nvml.get('error')}" if nvml.get("status") == "timeout"
                                   else f"The NVIDIA driver failed to answer through NVML: {nvml.get('error')}")
    return [Finding(problem, ERROR, title, detail=detail,
                    hint="A hung or lost GPU needs a reset or a reboot; look for Xid errors in the kernel log. "
                         "Output that is not nvidia-smi's means another program of that name comes first on PATH.",
                    fixes=(manual("sudo dmesg | grep -i -E 'NVRM|Xid'"),))]


def visible_count(value: str, gpus: list[dict]) -> int:
    """How many of ``gpus`` a CUDA_VISIBLE_DEVICES value leaves visible (CUDA stops at the first invalid entry)."""
    count = 0
    for entry in (e.strip() for e in value.split(",")):
        if re.fullmatch(r"-?\d+", entry):
            if not 0 <= int(entry) < len(gpus):
                break
        elif entry.startswith(("GPU-", "MIG-")):
            if not any((g.get("uuid") or "").startswith(entry) for g in gpus) and not entry.startswith("MIG-"):
                break
        else:
            break
        count += 1
    return count


def visible_devices(facts: dict) -> list[Finding]:
    gpu = facts.get("gpu")
    if not gpu:
        return []
    env = gpu.get("visible_devices") or {}
    cuda_value, nvidia_value = env.get("CUDA_VISIBLE_DEVICES"), env.get("NVIDIA_VISIBLE_DEVICES")
    if not gpu.get("gpus"):
        if gpu.get("container") and (nvidia_value or "").strip().lower() in ("none", "void"):
            return [Finding("gpu.visible-devices-hide-all", WARNING,
                            f"NVIDIA_VISIBLE_DEVICES={nvidia_value!r}: the container runtime exposes no GPU",
                            hint="Start the container with GPU access and NVIDIA_VISIBLE_DEVICES=all (or --gpus all).",
                            fixes=(manual("docker run --gpus all -e NVIDIA_VISIBLE_DEVICES=all ..."),))]
        return []
    total = len(gpu["gpus"])
    if cuda_value is None:
        return []
    shown = visible_count(cuda_value, gpu["gpus"])
    if shown == 0:
        return [Finding("gpu.visible-devices-hide-all", WARNING,
                        f"CUDA_VISIBLE_DEVICES={cuda_value!r} hides all {total} GPU{'s' if total != 1 else ''}",
                        detail="CUDA programs see no GPU: an empty value, -1, or a first entry that is no valid "
                               "index or GPU UUID hides every device (CUDA stops at the first invalid entry).",
                        hint="Unset it, or list the GPUs to use by index (0,1) or UUID (nvidia-smi -L).",
                        fixes=(Fix("env", "unset CUDA_VISIBLE_DEVICES"),))]
    if shown < total:
        return [Finding("gpu.visible-devices", INFO, f"CUDA_VISIBLE_DEVICES={cuda_value!r} shows {shown} of {total} GPUs")]
    return []


RULES = (devices, driver_state, visible_devices)
