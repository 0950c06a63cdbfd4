"""Node-health rules of the GPU section (gpu.*), in the spirit of NVIDIA DCGM's deployment
checks: what stops or slows CUDA on a machine whose driver works (fabric manager, memory
retirement, ECC, compute mode, other processes, MIG, persistence, throttling, PCIe link,
nvidia-uvm, Xid errors). Pure; each reads a missing fact (None) as unknown.
"""

from __future__ import annotations

import re

from tbdoctor.findings import ERROR, INFO, WARNING, Finding
from tbdoctor.rules.common import manual
from tbdoctor.rules.gpu import platform_of

# NVML clock event reasons (nvmlClocksEventReason*) meaning heat or power hardware holds the GPU back.
_THROTTLES = {0x08: "hardware slowdown (HW_SLOWDOWN)", 0x20: "software thermal slowdown",
              0x40: "hardware thermal slowdown", 0x80: "power brake (external power supply signal)"}
# Xid meanings, from NVIDIA's Xid catalog (docs.nvidia.com/deploy/xid-errors); the rest are looked up there.
_XIDS = {13: "graphics engine exception (usually the application)",
         31: "GPU memory page fault (usually the application)",
         43: "GPU stopped processing (usually the application)", 45: "preemptive cleanup after a previous error",
         48: "double-bit ECC error", 61: "internal micro-controller breakpoint", 62: "internal micro-controller halt",
         63: "ECC page retirement or row remapping recorded", 64: "ECC page retirement or row remapping failed",
         74: "NVLink error", 79: "GPU has fallen off the bus", 92: "high single-bit ECC error rate",
         94: "contained ECC error", 95: "uncontained ECC error", 119: "GSP RPC timeout", 120: "GSP error"}
_APPLICATION_XIDS = {13, 31, 43, 45}


def _gpus(facts: dict) -> list[dict]:
    return list((facts.get("gpu") or {}).get("gpus") or ())


def _names(gpus: list[dict]) -> str:
    return ", ".join(f"GPU {g.get('index')}" for g in gpus)


def _reset(gpus: list[dict]):
    return manual(f"sudo nvidia-smi --gpu-reset -i {','.join(str(g.get('index')) for g in gpus)}  # or: sudo reboot")


def _fabric(g: dict) -> tuple[str | None, str | None]:
    fabric = g.get("fabric") or {}
    return fabric.get("state"), fabric.get("status")


def fabric_manager(facts: dict) -> list[Finding]:
    gpu = facts.get("gpu") or {}
    nodes = (gpu.get("driver") or {}).get("device_nodes") or []
    switches = [n for n in nodes if re.fullmatch(r"nvidia-nvswitch(\d+|ctl)", n)]
    waiting = [g for g in _gpus(facts) if _fabric(g)[0] in ("not-started", "in-progress")]
    failed = [g for g in _gpus(facts) if _fabric(g)[0] == "completed" and _fabric(g)[1]]
    done = [g for g in _gpus(facts) if _fabric(g) == ("completed", None)]
    # In a container /proc shows only its own processes: there the fabric state alone decides.
    no_process = switches and gpu.get("fabric_manager_running") is False and not gpu.get("container") and not done
    if not (waiting or failed or no_process):
        return []
    seen = [f"GPU {g.get('index')}: fabric {_fabric(g)[0]}" + (f" ({_fabric(g)[1]})" if _fabric(g)[1] else "")
            for g in waiting + failed]
    if switches:
        seen.append(f"NVSwitch device nodes: {', '.join(switches)}")
    running = gpu.get("fabric_manager_running")
    if running is not None:
        seen.append(f"nv-fabricmanager process: {'running' if running else 'not running'}")
    affected = waiting + failed
    return [Finding("gpu.fabric-manager-not-running", ERROR,
                    (f"{_names(affected)} not registered with the NVSwitch fabric" if affected else
                     "NVSwitch system without a running NVIDIA Fabric Manager")
                    + ": CUDA fails with error 802 \"system not yet initialized\"",
                    detail="\n".join(seen),
                    hint="HGX/DGX systems with NVSwitch need the nvidia-fabricmanager service, of exactly the driver's "
                         "version, running on the host before CUDA can start; `journalctl -u nvidia-fabricmanager` "
                         "says why it stopped (most often a version that differs from the driver's).",
                    fixes=(manual("sudo systemctl enable --now nvidia-fabricmanager"),))]


def _memory_state(g: dict) -> str:
    rows, said = g.get("remapped_rows") or {}, []
    if g.get("retired_pages_pending"):
        said.append("pages pending retirement")
    if rows:
        said.append(f"remapped rows: {rows.get('correctable')} correctable, {rows.get('uncorrectable')} uncorrectable"
                    + (", remapping pending" if rows.get("pending") else "")
                    + (", remapping failed" if rows.get("failed") else ""))
    return f"GPU {g.get('index')}: " + "; ".join(said)


def memory_health(facts: dict) -> list[Finding]:
    findings = []
    pending = [g for g in _gpus(facts)
               if g.get("retired_pages_pending") or (g.get("remapped_rows") or {}).get("pending")]
    if pending:
        findings.append(Finding(
            "gpu.memory-retirement-pending", WARNING,
            f"{_names(pending)}: memory pages or rows wait to be retired / remapped until the GPU is reset",
            detail="\n".join(_memory_state(g) for g in pending),
            hint="Until a reset the bad memory stays in use and more ECC errors follow. Stop the jobs on it, then "
                 "reset the GPU or reboot (NVIDIA's GPU memory error management guide).", fixes=(_reset(pending),)))
    failed = [g for g in _gpus(facts) if (g.get("remapped_rows") or {}).get("failed")]
    if failed:
        findings.append(Finding(
            "gpu.row-remapping-failed", ERROR, f"{_names(failed)}: row remapping failed (no spare memory rows left)",
            detail="\n".join(_memory_state(g) for g in failed),
            hint="The GPU's memory cannot repair itself any more: run NVIDIA's field diagnostics and have it "
                 "replaced (RMA); drain the node meanwhile.", fixes=(manual("dcgmi diag -r 3"),)))
    ecc = [g for g in _gpus(facts) if (g.get("ecc_uncorrected_volatile") or 0) > 0]
    if ecc:
        findings.append(Finding(
            "gpu.ecc-uncorrectable", WARNING,
            f"{_names(ecc)}: uncorrectable ECC errors since the driver loaded "
            f"({', '.join(str(g['ecc_uncorrected_volatile']) for g in ecc)})",
            hint="A job that touched the bad memory crashed or computed garbage. Reset the GPU or reboot so the "
                 "pages are retired / rows remapped; if the count grows again, run field diagnostics.",
            fixes=(_reset(ecc),)))
    return findings


def _holders(g: dict) -> str:
    return ", ".join(f"{p.get('name') or '?'} (pid {p.get('pid')}"
                     + (f", {p['used_mib'] / 1024:.1f} GiB)" if isinstance(p.get("used_mib"), int) else ")")
                     for p in g.get("processes") or ())


def compute_mode(facts: dict) -> list[Finding]:
    findings = []
    prohibited = [g for g in _gpus(facts) if g.get("compute_mode") == "prohibited"]
    if prohibited:
        findings.append(Finding(
            "gpu.compute-mode-prohibited", ERROR, f"{_names(prohibited)} in compute mode Prohibited: no program can "
                                                  "create a CUDA context there",
            hint="An administrator set it (often to drain a GPU); CUDA reports \"all CUDA-capable devices are busy "
                 "or unavailable\". Set the mode back to Default if the GPU should be used.",
            fixes=(manual(f"sudo nvidia-smi -i {','.join(str(g['index']) for g in prohibited)} -c DEFAULT"),)))
    exclusive = [g for g in _gpus(facts) if g.get("compute_mode") in ("exclusive-process", "exclusive-thread")]
    held = [g for g in exclusive if g.get("processes")]
    if exclusive:
        findings.append(Finding(
            "gpu.compute-mode-exclusive", WARNING if held else INFO,
            f"{_names(exclusive)} in compute mode Exclusive Process"
            + (f": already held by {'; '.join(_holders(g) for g in held)}" if held else ": one process at a time"),
            detail="A second process (a DataLoader worker that touches CUDA, a second rank on the same GPU) gets "
                   "\"CUDA-capable device(s) is/are busy or unavailable\".",
            hint="Wait for the holder to finish, or set the mode to Default to share the GPU.",
            fixes=(manual(f"sudo nvidia-smi -i {','.join(str(g['index']) for g in exclusive)} -c DEFAULT"),)))
    return findings


def busy(facts: dict) -> list[Finding]:
    lines, worst = [], INFO
    for g in _gpus(facts):
        total, used, procs = g.get("memory_total_mib"), g.get("memory_used_mib"), g.get("processes")
        share = used / total if isinstance(used, int) and isinstance(total, int) and total else None
        util = g.get("utilization_pct") or 0
        if procs:
            lines.append(f"GPU {g.get('index')}: {_holders(g)} — {used} / {total} MiB used, {util}% busy")
        elif g.get("mig_mode") != "enabled" and ((share or 0) > 0.5 or util >= 50):
            lines.append(f"GPU {g.get('index')}: processes tbdoctor cannot see (another container or user) — "
                         f"{used} / {total} MiB used, {util}% busy")
        else:
            continue
        if share is None or share >= 0.1 or util >= 50:
            worst = WARNING
    if not lines:
        return []
    return [Finding("gpu.busy", worst, f"GPUs already in use: {'; '.join(l.split(' — ')[0] for l in lines)}",
                    detail="\n".join(lines),
                    hint="A job started now shares the GPU's memory and compute with them (and may run out of "
                         "memory); pick a free GPU with CUDA_VISIBLE_DEVICES or wait for them to finish.",
                    fixes=(manual("nvidia-smi --query-compute-apps=gpu_uuid,pid,process_name,used_memory "
                                  "--format=csv"),))]


def mig(facts: dict) -> list[Finding]:
    enabled = [g for g in _gpus(facts) if g.get("mig_mode") == "enabled"]
    empty = [g for g in enabled if g.get("mig_devices") == []]
    findings = []
    if empty:
        findings.append(Finding(
            "gpu.mig-no-instances", WARNING, f"MIG is enabled on {_names(empty)} but no MIG instance exists: CUDA "
                                             "sees no device there",
            hint="Create GPU and compute instances (`nvidia-smi mig -lgip` lists the profiles), or turn MIG off "
                 "(takes effect after a GPU reset).",
            fixes=(manual(f"sudo nvidia-smi mig -i {empty[0]['index']} -cgi <profile> -C"),
                   manual(f"sudo nvidia-smi -i {empty[0]['index']} -mig 0"))))
    listed = [g for g in enabled if g.get("mig_devices")]
    unknown = [g for g in enabled if g.get("mig_devices") is None]
    if listed or unknown:
        uuids = [u for g in listed for u in g["mig_devices"]]
        findings.append(Finding(
            "gpu.mig-enabled", INFO, f"MIG is enabled on {_names(listed + unknown)}: CUDA sees MIG instances, not "
                                     "the whole GPU",
            detail="\n".join(f"GPU {g.get('index')}: " + ", ".join(g["mig_devices"]) for g in listed)
                   or "MIG instances: unknown (`nvidia-smi -L` lists them)",
            hint="A CUDA process uses one MIG instance: choose it with CUDA_VISIBLE_DEVICES="
                 + (uuids[0] if uuids else "MIG-<uuid>") + "; NCCL cannot span MIG instances.",
            fixes=(manual(f"export CUDA_VISIBLE_DEVICES={uuids[0] if uuids else 'MIG-<uuid>'}"),)))
    return findings


def persistence(facts: dict) -> list[Finding]:
    off = [g for g in _gpus(facts) if g.get("persistence_mode") == "disabled"]
    if not off or platform_of(facts) != "linux":
        return []
    return [Finding("gpu.persistence-mode-off", INFO, f"Persistence mode is off on {_names(off)}",
                    detail="Without it the driver tears the GPU down whenever no program uses it, so each first "
                           "CUDA call (and nvidia-smi) waits seconds for re-initialisation.",
                    hint="On a server, run NVIDIA's persistence daemon (on the host, for a container).",
                    fixes=(manual("sudo systemctl enable --now nvidia-persistenced"),))]


def throttling(facts: dict) -> list[Finding]:
    hit = [(g, [text for bit, text in _THROTTLES.items() if (g.get("throttle_reasons") or 0) & bit])
           for g in _gpus(facts)]
    hit = [(g, reasons) for g, reasons in hit if reasons]
    if not hit:
        return []
    return [Finding("gpu.clocks-throttled", WARNING, f"{_names([g for g, _ in hit])}: clocks held back for thermal "
                                                      "or power reasons",
                    detail="\n".join(f"GPU {g.get('index')}: {', '.join(r)}" for g, r in hit)
                           + "\n(The power cap alone, normal at full load, is not reported.)",
                    hint="Check cooling (fans, airflow, inlet temperature) and the power supply; "
                         "`nvidia-smi -q -d PERFORMANCE,TEMPERATURE,POWER` shows the details.",
                    fixes=(manual("nvidia-smi -q -d PERFORMANCE,TEMPERATURE,POWER"),))]


def pcie_link(facts: dict) -> list[Finding]:
    lines = []
    for g in _gpus(facts):
        p = g.get("pcie") or {}
        width, width_max, gen, gen_max = (p.get(k) for k in ("width", "width_max", "gen", "gen_max"))
        if isinstance(width, int) and isinstance(width_max, int) and 0 < width < width_max:
            lines.append(f"GPU {g.get('index')}: link width x{width} of x{width_max}")
        elif isinstance(gen, int) and isinstance(gen_max, int) and gen < gen_max \
                and (g.get("utilization_pct") or 0) >= 50:  # idle GPUs lower the generation to save power
            lines.append(f"GPU {g.get('index')}: PCIe gen {gen} of {gen_max} while {g['utilization_pct']}% busy")
    if not lines:
        return []
    return [Finding("gpu.pcie-link-degraded", WARNING, f"PCIe link below its maximum: {'; '.join(lines)}",
                    detail="An idle GPU lowers its link generation to save power, so a lower generation is reported "
                           "only under load; fewer lanes than the slot allows is reported always.",
                    hint="Host-device copies are slower by the same factor. Reseat the card or riser, check the "
                         "slot's lane wiring and the BIOS PCIe settings.",
                    fixes=(manual("nvidia-smi -q -d PCIE"),))]


def uvm(facts: dict) -> list[Finding]:
    gpu = facts.get("gpu") or {}
    driver = gpu.get("driver") or {}
    modules, nodes = driver.get("modules") or {}, driver.get("device_nodes")
    if not _gpus(facts) or platform_of(facts) != "linux" or not modules.get("nvidia"):
        return []
    missing = []
    if modules.get("nvidia_uvm") is False and not gpu.get("container"):
        missing.append("the nvidia_uvm kernel module is not loaded")
    if nodes is not None and "nvidia-uvm" not in nodes:
        missing.append("/dev/nvidia-uvm does not exist")
    if not missing:
        return []
    fix = (manual("docker run --gpus all ...") if gpu.get("container")
           else manual("sudo modprobe nvidia-uvm && sudo nvidia-modprobe -u -c=0"))
    return [Finding("gpu.uvm-missing", ERROR, f"nvidia-smi works but CUDA cannot start: {' and '.join(missing)}",
                    detail="CUDA's runtime needs the unified-memory device; without it cuInit fails (torch: "
                           "\"CUDA unknown error\" / cuda.is_available() False) although the driver lists the GPUs.",
                    hint="Load the module and create the node (nvidia-modprobe ships with the driver); in a "
                         "container, restart it with GPU access so the runtime passes /dev/nvidia-uvm in.",
                    fixes=(fix,))]


def xid(facts: dict) -> list[Finding]:
    events = ((facts.get("gpu") or {}).get("xid") or {}).get("events") or []
    if not events:
        return []
    counts: dict[int, int] = {}
    for event in events:
        counts[event["xid"]] = counts.get(event["xid"], 0) + 1
    hardware = sorted(x for x in counts if x not in _APPLICATION_XIDS)
    named = ", ".join(f"Xid {x} × {n} ({_XIDS.get(x, 'see NVIDIA Xid catalog')})" for x, n in sorted(counts.items()))
    return [Finding("gpu.xid-errors", WARNING if hardware else INFO, f"Xid errors in the kernel log: {named}",
                    detail="\n".join(e["text"] for e in events[-10:]),
                    hint="Xid 13/31/43/45 usually come from a crashing program; the others point at the GPU, its "
                         "memory, NVLink or the driver: reset the GPU or reboot, and run field diagnostics if they "
                         "recur (docs.nvidia.com/deploy/xid-errors).",
                    fixes=(manual("sudo dmesg -T | grep -i xid"),))]


RULES = (fabric_manager, uvm, memory_health, compute_mode, busy, mig, persistence, throttling, pcie_link, xid)
