"""The ``gpu`` host probe: NVIDIA driver and GPUs (NVML first, nvidia-smi when NVML cannot
answer), the driver's state in the operating system, and other accelerators.

facts["gpu"] = {
  "source": "nvml" | "nvidia-smi" | None,      # who listed the GPUs
  "driver_version": "535.104.05" | None,
  "cuda_driver_version": "12.2" | None,       # highest CUDA the driver supports
  "gpus": [{"index", "name", "uuid", "memory_total_mib", "memory_used_mib",
            "compute_capability", "compute_capability_source", "mig_mode",
            "persistence_mode", "pci_bus_id",
            # node health, each None where neither NVML nor nvidia-smi answers:
            "compute_mode": "default|exclusive-process|prohibited|exclusive-thread",
            "ecc_uncorrected_volatile": int, "retired_pages_pending": bool,
            "remapped_rows": {"correctable", "uncorrectable", "pending", "failed"},
            "processes": [{"pid", "name", "used_mib"}], "utilization_pct": int,
            "throttle_reasons": int (NVML bitmask), "pcie": {"width", "width_max", "gen", "gen_max"},
            "mig_devices": ["MIG-..."] (MIG enabled only), "fabric": {"state", "status"}}],
                                                  # [] = no NVIDIA GPU seen
  "nvml": {"status": "ok|failed|timeout", "error", "code"},
  "nvidia_smi": {"path", "status", "method", "error", "output_tail"} | None (not run),
  "driver": {"kernel_module_version", "modules": {"nvidia", "nvidia_uvm", "nouveau"}, "device_nodes", "pci_devices"},
  "fabric_manager_running": bool | None,        # an nv-fabricmanager process; None: no NVSwitch nodes, not looked
  "xid": {"readable", "error", "events": [{"pci", "xid", "text"}]} | None (no GPU, not read),
  "wsl": {"detected", "libcuda", "dxg"}, "container": "docker" | "podman" | None,
  "visible_devices": {"CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES"},
  "other_accelerators": [{"vendor", "name", "backend", "source"}],
}
"""

from __future__ import annotations

from tbdoctor import compat
from tbdoctor.gpuinfo import nvidia_smi, nvml, os_gpus

STEP_TIMEOUT = 10.0  # one NVML query or one nvidia-smi call; a healthy one takes well under a second


def probe(ctx) -> dict:
    step = min(STEP_TIMEOUT, ctx.timeout)
    nvml_facts = nvml.query_bounded(step)
    facts: dict = {"source": None, "driver_version": None, "cuda_driver_version": None, "gpus": [],
                   "nvml": {k: nvml_facts.get(k) for k in ("status", "error", "code")}, "nvidia_smi": None}
    if nvml_facts["status"] == "ok":
        facts.update(source="nvml", driver_version=nvml_facts["driver_version"],
                     cuda_driver_version=nvml_facts["cuda_driver_version"], gpus=nvml_facts["gpus"])
    else:
        smi = nvidia_smi.probe(ctx.run, step)
        facts["nvidia_smi"] = {k: smi[k] for k in ("path", "status", "method", "error", "output_tail")}
        if smi["status"] == "ok":
            facts.update(source="nvidia-smi", driver_version=smi["driver_version"],
                         cuda_driver_version=smi["cuda_driver_version"], gpus=smi["gpus"])
    for gpu in facts["gpus"]:
        if gpu.get("compute_capability"):
            gpu["compute_capability_source"] = facts["source"]
        else:  # R470 and older nvidia-smi cannot report it: the product table knows most names
            gpu["compute_capability"] = compat.gpu_compute_capability(gpu.get("name") or "")
            gpu["compute_capability_source"] = "name" if gpu["compute_capability"] else None
    pci = os_gpus.pci_display_devices()
    facts.update(
        driver={"kernel_module_version": os_gpus.kernel_module_version(), "modules": os_gpus.kernel_modules(),
                "device_nodes": os_gpus.device_nodes(), "pci_devices": pci},
        wsl=os_gpus.wsl(), container=os_gpus.container(), visible_devices=os_gpus.visible_devices(),
        other_accelerators=os_gpus.other_accelerators(ctx.run, step, pci),
    )
    nvswitch = any(n.startswith("nvidia-nvswitch") for n in facts["driver"]["device_nodes"] or ())
    facts["fabric_manager_running"] = os_gpus.fabric_manager_running() if nvswitch else None
    has_driver = facts["gpus"] or facts["driver"]["kernel_module_version"]
    facts["xid"] = os_gpus.xid_events(ctx.run, step) if has_driver else None
    return facts
