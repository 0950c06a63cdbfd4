"""The ``nvidia-smi`` fallback: run it (bounded), parse its three output forms, and turn
every failure (the driver unreachable, a hang, garbage) into facts.

Order: ``--query-gpu=... --format=csv,noheader,nounits`` (again without
``compute_cap`` for drivers older than R510 that reject the field), then
``-L``, then the plain table, which is also the only form that states the CUDA
version the driver supports. A timeout stops the sequence: a hung GPU hangs
every form.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import sys
from typing import Callable

FIELDS = ("index", "name", "uuid", "memory.total", "memory.used", "compute_cap", "mig.mode.current",
          "persistence_mode", "pci.bus_id", "driver_version")
_FIELDS_OLD = tuple(f for f in FIELDS if f != "compute_cap")
# Node health, asked separately so a driver that rejects one of these fields still lists its GPUs.
HEALTH_FIELDS = ("index", "compute_mode", "retired_pages.pending", "ecc.errors.uncorrected.volatile.total",
                 "clocks_throttle_reasons.active", "pcie.link.width.current", "pcie.link.width.max",
                 "pcie.link.gen.current", "pcie.link.gen.max", "utilization.gpu")
# R535 renamed clocks_throttle_reasons to clocks_event_reasons: the old name is asked first, then the new.
_HEALTH_FIELDS_NEW = tuple(f.replace("clocks_throttle_reasons", "clocks_event_reasons") for f in HEALTH_FIELDS)
APPS_FIELDS = ("gpu_uuid", "pid", "process_name", "used_memory")
FABRIC_FIELDS = ("index", "fabric.state", "fabric.status")  # R550+; older drivers reject them
REMAP_FIELDS = ("gpu_uuid", "remapped_rows.correctable", "remapped_rows.uncorrectable", "remapped_rows.pending",
                "remapped_rows.failure")
_COMPUTE_MODES = {"default": "default", "exclusive_process": "exclusive-process", "prohibited": "prohibited",
                  "exclusive_thread": "exclusive-thread"}
_WSL_SMI = "/usr/lib/wsl/lib/nvidia-smi"

# Failure texts nvidia-smi prints (on stdout), most specific first.
_FAILURES = (
    ("driver-unreachable", re.compile(r"couldn't communicate with the NVIDIA driver", re.I)),
    ("version-mismatch", re.compile(r"Driver/library version mismatch", re.I)),
    ("gpu-lost", re.compile(r"GPU is lost|Unable to determine the device handle", re.I)),
    ("no-devices", re.compile(r"No devices were found", re.I)),
    ("nvml-failed", re.compile(r"Failed to initialize NVML", re.I)),
)
_LIST_LINE = re.compile(r"^GPU (\d+): (.+?) \(UUID: ([^)]+)\)\s*$")
_MIG_LINE = re.compile(r"^\s+MIG .*\(UUID: (MIG-[^)]+)\)\s*$")
_HEADER_DRIVER = re.compile(r"(?:Driver|KMD) Version:\s*([0-9][0-9.]*)")
_HEADER_CUDA = re.compile(r"CUDA (?:UMD )?Version:\s*([0-9][0-9.]*)")
_TABLE_GPU = re.compile(r"^\|\s+(\d+)\s+(.+?)\s+(On|Off)\s*\|\s*([0-9A-Fa-f]+:[0-9A-Fa-f]+:[0-9A-Fa-f]+\.[0-9A-Fa-f])\s")
_TABLE_MEMORY = re.compile(r"(\d+)MiB\s*/\s*(\d+)MiB")


def find() -> str | None:
    """nvidia-smi on PATH, or WSL's copy that is often not on PATH."""
    found = shutil.which("nvidia-smi")
    if found is None and sys.platform.startswith("linux") and os.path.isfile(_WSL_SMI):
        found = _WSL_SMI
    return found


def classify_failure(text: str) -> str | None:
    for status, pattern in _FAILURES:
        if pattern.search(text or ""):
            return status
    return None


def _value(text: str):
    text = text.strip()
    return None if not text or text.startswith("[") or text in ("N/A", "Unknown Error") else text


def _mode(text: str | None) -> str | None:
    return text.lower() if text and text.lower() in ("enabled", "disabled") else None


def parse_query(stdout: str, fields=FIELDS) -> list[dict] | None:
    """GPUs from ``--query-gpu`` CSV output; None unless every line is a well-formed row."""
    lines = [line for line in (stdout or "").splitlines() if line.strip()]
    if not lines:
        return None
    gpus = []
    for row in csv.reader(lines, skipinitialspace=True):
        if len(row) != len(fields):
            return None
        raw = dict(zip(fields, (_value(v) for v in row)))
        try:
            index = int(raw["index"])
            total = int(float(raw["memory.total"])) if raw["memory.total"] else None
            used = int(float(raw["memory.used"])) if raw["memory.used"] else None
        except (TypeError, ValueError):
            return None
        cc = raw.get("compute_cap")
        if cc is not None and not re.fullmatch(r"\d+\.\d+", cc):
            return None
        if not raw["name"]:
            return None
        gpus.append({"index": index, "name": raw["name"], "uuid": raw["uuid"], "memory_total_mib": total,
                     "memory_used_mib": used, "compute_capability": cc, "mig_mode": _mode(raw["mig.mode.current"]),
                     "persistence_mode": _mode(raw["persistence_mode"]), "pci_bus_id": raw["pci.bus_id"],
                     "driver_version": raw["driver_version"]})
    return gpus


def _blank(index: int, name: str, uuid=None, pci=None, persistence=None, total=None, used=None) -> dict:
    return {"index": index, "name": name, "uuid": uuid, "memory_total_mib": total, "memory_used_mib": used,
            "compute_capability": None, "mig_mode": None, "persistence_mode": persistence, "pci_bus_id": pci,
            "driver_version": None}


def parse_list(stdout: str) -> list[dict] | None:
    """GPUs from ``nvidia-smi -L`` ("GPU 0: NAME (UUID: GPU-...)"; indented MIG lines skipped)."""
    gpus = [_blank(int(m[1]), m[2].strip(), uuid=m[3].strip())
            for m in map(_LIST_LINE.match, (stdout or "").splitlines()) if m]
    return gpus or None


def parse_table(stdout: str) -> tuple[str | None, str | None, list[dict] | None]:
    """(driver version, CUDA version, GPUs) from the plain ``nvidia-smi`` table."""
    text = stdout or ""
    driver, cuda = _HEADER_DRIVER.search(text), _HEADER_CUDA.search(text)
    gpus: list[dict] = []
    lines = text.splitlines()
    for i, line in enumerate(lines):
        match = _TABLE_GPU.match(line)
        if not match:
            continue
        memory = _TABLE_MEMORY.search(lines[i + 1]) if i + 1 < len(lines) else None
        gpus.append(_blank(int(match[1]), match[2].strip(), pci=match[4],
                           persistence="enabled" if match[3] == "On" else "disabled",
                           used=int(memory[1]) if memory else None, total=int(memory[2]) if memory else None))
    return (driver[1] if driver else None), (cuda[1] if cuda else None), (gpus or None)


def _int(text: str | None) -> int | None:
    try:
        return int(text, 16) if text and text.lower().startswith("0x") else int(float(text)) if text else None
    except ValueError:
        return None


def _flag(text: str | None) -> bool | None:
    value = (text or "").lower()
    return True if value in ("yes", "1", "true") else False if value in ("no", "0", "false") else None


def _rows(stdout: str, fields) -> list[dict] | None:
    """``--query-*`` CSV rows as dicts; None unless every line has every field."""
    rows = []
    for row in csv.reader([line for line in (stdout or "").splitlines() if line.strip()], skipinitialspace=True):
        if len(row) != len(fields):
            return None
        rows.append(dict(zip(fields, (_value(v) for v in row))))
    return rows


def parse_health(stdout: str) -> dict[int, dict] | None:
    """Per-index node-health fields from the ``HEALTH_FIELDS`` query, by position (shapes as in ``nvml._health``)."""
    rows = _rows(stdout, HEALTH_FIELDS)
    found = {}
    for raw in rows or ():
        index = _int(raw["index"])
        if index is None:
            return None
        pcie = [_int(raw[f]) for f in HEALTH_FIELDS[5:9]]
        found[index] = {
            "compute_mode": _COMPUTE_MODES.get((raw["compute_mode"] or "").lower()),
            "retired_pages_pending": _flag(raw["retired_pages.pending"]),
            "ecc_uncorrected_volatile": _int(raw["ecc.errors.uncorrected.volatile.total"]),
            "throttle_reasons": _int(raw["clocks_throttle_reasons.active"]),
            "pcie": (dict(zip(("width", "width_max", "gen", "gen_max"), pcie))
                     if any(v is not None for v in pcie) else None),
            "utilization_pct": _int(raw["utilization.gpu"]),
        }
    return found or None


def parse_apps(stdout: str) -> list[dict] | None:
    """Compute processes from ``--query-compute-apps`` (no output: none running)."""
    rows = _rows(stdout, APPS_FIELDS)
    if rows is None:
        return None
    return [{"gpu_uuid": r["gpu_uuid"], "pid": _int(r["pid"]), "name": r["process_name"],
             "used_mib": _int(r["used_memory"])} for r in rows]


def parse_remap(stdout: str) -> dict[str, dict] | None:
    """Row-remapping state per GPU UUID from ``--query-remapped-rows``."""
    rows = _rows(stdout, REMAP_FIELDS)
    return {r["gpu_uuid"]: {"correctable": _int(r["remapped_rows.correctable"]),
                            "uncorrectable": _int(r["remapped_rows.uncorrectable"]),
                            "pending": _flag(r["remapped_rows.pending"]), "failed": _flag(r["remapped_rows.failure"])}
            for r in rows or () if r["gpu_uuid"]} or None


def parse_fabric(stdout: str) -> dict[int, dict]:
    """NVSwitch fabric state per GPU index ("Not Started", "In Progress", "Completed"; N/A: no fabric)."""
    found = {}
    for r in _rows(stdout, FABRIC_FIELDS) or ():
        index, state = _int(r["index"]), (r["fabric.state"] or "").lower().replace(" ", "-")
        if index is not None and state in ("not-started", "in-progress", "completed"):
            found[index] = {"state": state, "status": None if (r["fabric.status"] or "Success") == "Success"
                            else r["fabric.status"]}
    return found


def parse_mig(stdout: str) -> dict[int, list[str]]:
    """MIG device UUIDs under each GPU index in ``nvidia-smi -L``."""
    found: dict[int, list[str]] = {}
    current = None
    for line in (stdout or "").splitlines():
        gpu, mig = _LIST_LINE.match(line), _MIG_LINE.match(line)
        if gpu:
            current = int(gpu[1])
            found[current] = []
        elif mig and current is not None:
            found[current].append(mig[1])
    return found


def health(run: Callable, timeout: float, smi: str, gpus: list[dict]) -> None:
    """Add the node-health fields to ``gpus`` (None where nvidia-smi has no answer); failures stay quiet."""
    def ask(*args) -> str | None:
        result = run([smi, *args], timeout)
        text = (result.stdout or "") + (result.stderr or "")
        return result.stdout if result.ok and not classify_failure(text) and "not a valid field" not in text else None

    fmt = "--format=csv,noheader,nounits"
    asked = ask(f"--query-gpu={','.join(HEALTH_FIELDS)}", fmt)
    if asked is None:
        asked = ask(f"--query-gpu={','.join(_HEALTH_FIELDS_NEW)}", fmt)
    by_index = parse_health(asked or "") or {}
    listed = ask(f"--query-compute-apps={','.join(APPS_FIELDS)}", fmt)
    apps = parse_apps(listed) if listed is not None else None
    remap = parse_remap(ask(f"--query-remapped-rows={','.join(REMAP_FIELDS)}", fmt) or "") or {}
    fabric = parse_fabric(ask(f"--query-gpu={','.join(FABRIC_FIELDS)}", fmt) or "")
    mig = parse_mig(ask("-L") or "") if any(g.get("mig_mode") == "enabled" for g in gpus) else {}
    for gpu in gpus:
        gpu.update(by_index.get(gpu["index"]) or dict.fromkeys(("compute_mode", "retired_pages_pending",
                                                                  "ecc_uncorrected_volatile", "throttle_reasons",
                                                                  "pcie", "utilization_pct")))
        gpu["processes"] = None if apps is None or not gpu.get("uuid") else \
            [{k: p[k] for k in ("pid", "name", "used_mib")} for p in apps if p["gpu_uuid"] == gpu["uuid"]]
        gpu["remapped_rows"] = remap.get(gpu.get("uuid"))
        gpu["mig_devices"] = mig.get(gpu["index"]) if gpu.get("mig_mode") == "enabled" and gpu["index"] in mig else None
        gpu["fabric"] = fabric.get(gpu["index"])


def _tail(result) -> str:
    return ((result.stdout or "") + (result.stderr or "")).strip()[-1500:]


def probe(run: Callable, timeout: float) -> dict:
    """Facts from nvidia-smi. ``run(argv, timeout) -> procs.ProcResult``."""
    facts: dict = {"path": find(), "status": "not-found", "method": None, "error": None, "output_tail": None,
                   "driver_version": None, "cuda_driver_version": None, "gpus": []}
    if facts["path"] is None:
        return facts
    smi = facts["path"]

    def call(*args):
        result = run([smi, *args], timeout)
        text = (result.stdout or "") + (result.stderr or "")
        if result.timed_out:
            facts.update(status="timeout", error=f"`nvidia-smi {' '.join(args)}` did not answer within "
                                                 f"{result.seconds:.0f} s", output_tail=_tail(result))
            return None
        failure = classify_failure(text)
        if failure or result.not_found or result.error:
            facts.update(status=failure or "failed", error=result.failure() or failure, output_tail=_tail(result))
            return None
        return result

    query = call(f"--query-gpu={','.join(FIELDS)}", "--format=csv,noheader,nounits")
    if query is None:
        return facts
    gpus = parse_query(query.stdout) if query.ok else None
    if gpus is None and "not a valid field" in _tail(query):
        query = call(f"--query-gpu={','.join(_FIELDS_OLD)}", "--format=csv,noheader,nounits")
        if query is None:
            return facts
        gpus = parse_query(query.stdout, _FIELDS_OLD) if query.ok else None
    method, last = "query", query
    if gpus is None:
        listing = call("-L")
        if listing is None:
            return facts
        gpus, method, last = (parse_list(listing.stdout) if listing.ok else None), "list", listing
    table = call()
    if table is None:
        return facts
    driver, cuda, table_gpus = parse_table(table.stdout) if table.ok else (None, None, None)
    if gpus is None and table_gpus:
        gpus, method = table_gpus, "table"
    if gpus is None:
        facts.update(status="garbage" if last.ok else "failed", output_tail=_tail(last),
                     error=last.failure() or "printed nothing tbdoctor can read")
        return facts
    driver = driver or next((g["driver_version"] for g in gpus if g["driver_version"]), None)
    for gpu in gpus:
        gpu.pop("driver_version", None)
    health(run, timeout, smi, gpus)
    facts.update(status="ok", method=method, driver_version=driver, cuda_driver_version=cuda, gpus=gpus)
    return facts
