"""Fleet: many machines' ``check --json`` reports merged into one table.

Each report becomes a row (driver, CUDA, torch and its CUDA build, the
frameworks, GPUs, error ids), read in parallel worker processes so that
thousands of files take seconds; a file that cannot be read, is truncated, or
is not a ``tbdoctor.report/1`` object is skipped with its reason, never fatal.
Then drift (columns whose values differ), ``--uniform`` keys and policy
violations (each machine's facts judged by ``rules/policy.py``) decide the
verdict. Machines are named by their file (``reports/$(hostname).json``):
host names are redacted inside reports. No output here (``render/fleet.py``).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from packaging.utils import canonicalize_name

from tbdoctor.errors import UsageError
from tbdoctor.rules.policy import gpu_count, policy as policy_rule, torch_cuda_build

SCHEMA = "tbdoctor.fleet/1"
REPORT_SCHEMA = "tbdoctor.report/1"
UNKNOWN, ABSENT = "?", "-"
# Column key -> header. Facts read: python.version, gpu.driver_version,
# gpu.cuda_driver_version (the CUDA version the driver supports), gpu.gpus[].name,
# torch.cuda, packages.
COLUMNS = {
    "python": "Python", "driver": "Driver", "cuda": "CUDA", "torch": "torch", "torch_cuda": "torch CUDA",
    "tensorflow": "TensorFlow", "tensorboardx": "tensorboardX", "tensorboard": "TensorBoard",
    "gpus": "GPUs", "gpu_model": "GPU model",
}
_FAMILIES = {
    "tensorflow": ("tensorflow", "tensorflow-cpu", "tensorflow-gpu", "tf-nightly", "tensorflow-intel",
                   "tensorflow-macos"),
    "tensorboard": ("tensorboard", "tb-nightly", "tensorflow-tensorboard"),
    "tensorboardx": ("tensorboardx",),
    "torch": ("torch",),
}
_PARALLEL_FROM = 128  # below this many files, worker start-up costs more than it saves


def _versions(facts: dict) -> dict[str, str] | None:
    pkgs = facts.get("packages")
    if not isinstance(pkgs, dict):
        return None
    found: dict[str, str] = {}
    for d in pkgs.get("distributions") or ():
        found.setdefault(canonicalize_name(str(d.get("name"))), str(d.get("version")))
    return found


def _family(versions: dict | None, names: tuple[str, ...]) -> str:
    if versions is None:
        return UNKNOWN
    present = [(n, versions[n]) for n in names if n in versions]
    if not present:
        return ABSENT
    if len(present) == 1 and present[0][0] == names[0]:
        return present[0][1]
    return " + ".join(f"{v} ({n})" for n, v in present)


def columns(facts: dict, packages: tuple[str, ...] = ()) -> dict[str, str]:
    """The table's values for one machine's facts (plus the versions of ``packages``)."""
    versions = _versions(facts)
    gpu = facts.get("gpu") if isinstance(facts.get("gpu"), dict) else None
    count = gpu_count(facts)
    known, build = torch_cuda_build(facts)
    names = sorted({str(g.get("name")) for g in gpu.get("gpus") if isinstance(g, dict)}) if count else []
    row = {
        "python": str((facts.get("python") or {}).get("version") or UNKNOWN),
        "driver": str(gpu.get("driver_version") or ABSENT) if gpu else UNKNOWN,
        "cuda": str(gpu.get("cuda_driver_version") or ABSENT) if gpu else UNKNOWN,
        "torch_cuda": (build or "cpu") if known else (ABSENT if versions is not None and "torch" not in versions
                                                       else UNKNOWN),
        "gpus": UNKNOWN if count is None else str(count),
        "gpu_model": " + ".join(names) if names else (ABSENT if count == 0 else UNKNOWN),
    }
    for key, family in _FAMILIES.items():
        row[key] = _family(versions, family)
    for name in packages:
        row[name] = UNKNOWN if versions is None else versions.get(canonicalize_name(name), ABSENT)
    return {k: row[k] for k in (*COLUMNS, *packages)}


def read_report(path: str, policy: dict | None = None, packages: tuple[str, ...] = ()) -> dict:
    """One file -> {"file", "row"} or {"file", "skipped": reason}. Never raises."""
    try:
        data = json.loads(Path(path).read_bytes())
    except OSError as exc:
        return {"file": path, "skipped": f"cannot read ({exc.strerror or exc})"}
    except (ValueError, UnicodeDecodeError) as exc:  # truncated, empty, binary
        return {"file": path, "skipped": f"not valid JSON ({exc})"}
    if not isinstance(data, dict) or data.get("schema") != REPORT_SCHEMA:
        found = data.get("schema") if isinstance(data, dict) else type(data).__name__
        return {"file": path, "skipped": f"not a `tbdoctor check --json` report (schema {found!r})"}
    facts, checks = data.get("facts"), data.get("checks")
    if not isinstance(facts, dict) or not isinstance(checks, list):
        return {"file": path, "skipped": "a tbdoctor report without facts or checks"}
    try:
        errors = sorted({c["id"] for c in checks if c.get("status") == "error"})
        violations = [c["title"] for c in checks if c.get("status") == "error" and c["id"].startswith("policy.")]
        if policy:
            violations += [f.title for f in policy_rule(dict(facts, policy=policy)) if f.status == "error"]
        return {"file": path, "row": {**columns(facts, packages), "errors": errors,
                                      "violations": sorted(set(violations))}}
    except (AttributeError, KeyError, TypeError) as exc:
        return {"file": path, "skipped": f"unexpected report content ({type(exc).__name__}: {exc})"}


def _read_chunk(args: tuple) -> list[dict]:
    paths, policy, packages = args
    return [read_report(p, policy, packages) for p in paths]


def expand(paths: list[str]) -> list[str]:
    """Files as given, directories searched (recursively) for *.json, in a stable order."""
    files: list[str] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            files += sorted(str(f) for f in p.rglob("*.json") if f.is_file())
        elif p.exists():
            files.append(str(p))
        else:
            raise UsageError(f"{raw}: no such file or directory")
    return list(dict.fromkeys(files))


def _names(files: list[str]) -> dict[str, str]:
    """Machine names: file stems, or relative paths where two stems collide."""
    stems = Counter(Path(f).stem for f in files)
    return {f: Path(f).stem if stems[Path(f).stem] == 1 else str(Path(f).with_suffix("")) for f in files}


def merge(paths: list[str], policy: dict | None = None, uniform: tuple[str, ...] = (),
          workers: int | None = None) -> dict:
    """The ``tbdoctor.fleet/1`` object for the reports in ``paths``."""
    files = expand(paths)
    if not files:
        raise UsageError(f"no *.json reports found in {' '.join(paths)}")
    packages = tuple(k for k in uniform if k not in COLUMNS)
    workers = workers or os.cpu_count() or 1
    if len(files) < _PARALLEL_FROM or workers == 1:
        results = _read_chunk((files, policy, packages))
    else:
        size = max(16, len(files) // (workers * 4))
        chunks = [(files[i:i + size], policy, packages) for i in range(0, len(files), size)]
        with ProcessPoolExecutor(max_workers=workers) as pool:
            results = [r for chunk in pool.map(_read_chunk, chunks) for r in chunk]
    names = _names(files)
    machines = [{"machine": names[r["file"]], "file": r["file"], **r["row"]} for r in results if "row" in r]
    machines.sort(key=lambda m: m["machine"])
    skipped = [{"file": r["file"], "reason": r["skipped"]} for r in results if "skipped" in r]
    keys = (*COLUMNS, *packages)
    values = {k: Counter(m[k] for m in machines) for k in keys}
    drift = {k: dict(c.most_common()) for k, c in values.items() if len(c) > 1}
    differing = [k for k in uniform if k in drift]
    violating = [m["machine"] for m in machines if m["violations"]]
    return {
        "schema": SCHEMA, "machines": machines, "columns": list(keys),
        "majority": {k: c.most_common(1)[0][0] for k, c in values.items() if c},
        "drift": drift, "uniform": {k: k not in drift for k in uniform}, "policy": (policy or {}).get("source"),
        "violating": violating, "skipped": skipped,
        "status": "fail" if differing or violating else "pass",
    }
