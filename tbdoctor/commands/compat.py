"""``tbdoctor compat``: answer driver / GPU / PyTorch build questions from the bundled
knowledge base (``tbdoctor.compat``), without probing anything or using the network.

Text on stdout, or one ``tbdoctor.compat/1`` JSON object with ``--json``.
"""

from __future__ import annotations

import json
import re
import sys

from tbdoctor import compat
from tbdoctor.errors import EXIT_OK, UsageError

SCHEMA = "tbdoctor.compat/1"


def _driver_section(driver: str, platform: str) -> dict:
    families = [{"cuda_major": major, "min_driver": need,
                 "supported": compat.driver_supports_cuda(driver, f"{major}.0", platform)}
                for major, need in sorted(compat.cuda_families(platform).items(), key=lambda kv: int(kv[0]))]
    return {"version": driver, "full_support_cuda": compat.full_support_cuda(driver, platform),
            "cuda_families": families, "newer_than_knowledge": compat.newer_than_kb("driver", driver)}


def _gpu_section(gpu: str | None, cc: str | None, driver: str | None) -> dict:
    if gpu is not None:
        cc = compat.gpu_compute_capability(gpu)
        if cc is None:
            raise UsageError(f"--gpu {gpu!r}: not a GPU name tbdoctor knows; pass its compute capability "
                             "with --cc (see https://developer.nvidia.com/cuda-gpus)")
    arch = compat.architecture(cc) or {}
    return {"query": gpu, "compute_capability": cc, "architecture": arch.get("name"),
            "min_cuda": arch.get("min_cuda"), "max_cuda": arch.get("max_cuda"),
            "last_driver_branch": arch.get("last_driver_branch"),
            "driver_ok": compat.driver_supports_gpu(driver, cc) if driver else None}


def _torch_row(version: str, driver: str | None, cc: str | None, platform: str) -> dict:
    release = compat.torch_release(version) or {}
    variants = []
    for variant in compat.torch_variants(version):
        cuda = compat.variant_cuda(variant)
        arch = compat.torch_arch_list(version, variant)
        variants.append({
            "variant": variant, "cuda": cuda, "index_url": compat.torch_index_url(variant),
            "min_driver": compat.min_driver(cuda, platform),
            "driver_ok": compat.driver_supports_cuda(driver, cuda, platform) if driver else None,
            "arch_list": arch,
            "gpu_ok": (compat.arch_supported(cc, arch) if arch is not None else None) if cc else None,
        })
    best = compat.best_torch_variant(driver, version, cc, platform) if driver else next(
        (v["variant"] for v in reversed(variants) if v["gpu_ok"]), None)
    return {"version": release.get("version", version), "python": [release.get("python_min"), release.get("python_max")],
            "pypi_default": release.get("pypi_default"), "variants": variants, "best": best}


def answer(driver: str | None, gpu: str | None, cc: str | None, torch: str | None, platform: str) -> dict:
    """The whole answer as a dict (the JSON output)."""
    if driver is not None and not re.fullmatch(r"\d+(\.\d+)+", driver):
        raise UsageError(f"--driver {driver!r}: not a driver version (e.g. 535.104.05)")
    if cc is not None and not re.fullmatch(r"\d+\.\d+", cc):
        raise UsageError(f"--cc {cc!r}: not a compute capability (e.g. 8.6)")
    if torch is not None and compat.newer_than_kb("torch", torch):
        raise UsageError(f"--torch {torch!r}: newer than tbdoctor's knowledge of {compat.kb_date()} "
                         f"(the newest release it knows is {compat.newest_known('torch')})")
    if torch is not None and compat.torch_release(torch) is None:
        known = ", ".join(compat.torch_releases())
        raise UsageError(f"--torch {torch!r}: not a torch release tbdoctor knows ({known})")
    gpu_section = _gpu_section(gpu, cc, driver) if (gpu or cc) else None
    cc = gpu_section["compute_capability"] if gpu_section else None
    # Without --torch every release is considered, newest first: the best answer is the newest
    # release that fits the driver and the GPU, which for an old driver is not the latest one.
    versions = [torch] if torch else [v for v in reversed(compat.torch_releases()) if compat.torch_variants(v)]
    rows = [_torch_row(v, driver, cc, platform) for v in versions]
    best_row = next((r for r in rows if r["best"]), None) if not gpu_section or gpu_section["driver_ok"] is not False \
        else None
    best = None
    if best_row:
        url = compat.torch_index_url(best_row["best"])
        best = {"torch": best_row["version"], "variant": best_row["best"], "index_url": url,
                "command": f"pip install 'torch=={best_row['version']}.*' --index-url {url}"}
    return {"schema": SCHEMA, "platform": platform, "knowledge_base": {"date": compat.kb_date()},
            "driver": _driver_section(driver, platform) if driver else None,
            "gpu": gpu_section, "torch": rows, "best": best}


def _yes(value) -> str:
    return {True: "yes", False: "no ", None: " ? "}[value]


def _shown(data: dict) -> list[dict]:
    """The release rows worth printing: all of them for a GPU question, else the latest and the best."""
    rows = data["torch"]
    if data["gpu"] or len(rows) <= 1:
        return rows
    best = data["best"]["torch"] if data["best"] else None
    return [r for i, r in enumerate(rows) if i == 0 or r["version"] == best]


def render(data: dict) -> str:
    out = []
    driver, gpu = data["driver"], data["gpu"]
    if driver:
        out.append(f"Driver {driver['version']} ({data['platform']}): full support up to CUDA "
                   f"{driver['full_support_cuda'] or '? (older than every toolkit tbdoctor knows)'}")
        if driver["newer_than_knowledge"]:
            out.append(f"  This driver is newer than tbdoctor's knowledge of {data['knowledge_base']['date']}: "
                       "it supports at least that CUDA, probably newer ones")
        out.append("  CUDA runtimes it can run (minor-version compatibility, what pip wheels need):")
        for fam in driver["cuda_families"]:
            out.append(f"    {_yes(fam['supported'])}  CUDA {fam['cuda_major']}.x  (needs driver >= {fam['min_driver']})")
    if gpu:
        name = f"{gpu['query']}: " if gpu["query"] else ""
        line = f"GPU {name}compute capability {gpu['compute_capability']} ({gpu['architecture'] or 'unknown architecture'})"
        if gpu["min_cuda"] or gpu["max_cuda"]:
            line += f"; CUDA toolkits {gpu['min_cuda'] or 'any'} to {gpu['max_cuda'] or 'newest'} build for it"
        if gpu["last_driver_branch"]:
            line += f"; last driver branch R{gpu['last_driver_branch']}"
        out.append(line)
        if gpu["driver_ok"] is False:
            out.append(f"  Driver {driver['version']} ignores this GPU: install the R{gpu['last_driver_branch']} "
                       "(legacy) driver branch")
    for row in _shown(data):
        out.append(f"PyTorch {row['version']} (Python {row['python'][0]}-{row['python'][1]}; "
                   f"plain `pip install torch` on Linux gets {row['pypi_default'] or '?'}):")
        if not row["variants"]:
            out.append("    CUDA builds unknown to this tbdoctor")
        for v in row["variants"]:
            marks = []
            if v["driver_ok"] is not None:
                marks.append(f"driver {_yes(v['driver_ok']).strip()}" + ("" if v["driver_ok"] else f" (needs >= {v['min_driver']})"))
            if v["gpu_ok"] is not None or gpu:
                marks.append(f"GPU {_yes(v['gpu_ok']).strip()}")
            out.append(f"    {v['variant']:<6} CUDA {v['cuda']:<5} {', '.join(marks)}")
    hidden = len(data["torch"]) - len(_shown(data))
    if hidden:
        out.append(f"  ({hidden} other release{'s' if hidden != 1 else ''} checked: `--json` lists them)")
    best = data["best"]
    if best:
        out.append(f"Best: torch {best['torch']} {best['variant']}: {best['command']}")
    elif gpu and gpu["driver_ok"] is False:
        out.append(f"Best: none until a R{gpu['last_driver_branch']} driver runs this GPU")
    else:
        out.append("Best: no CUDA build of PyTorch tbdoctor knows fits; use the CPU build "
                   f"({compat.torch_index_url('cpu')}) or upgrade the driver")
    out.append(f"(knowledge base of {data['knowledge_base']['date']})")
    return "\n".join(out) + "\n"


def run(args) -> int:
    if not (args.driver or args.gpu or args.cc):
        raise UsageError("compat needs --driver, --gpu or --cc (see `tbdoctor compat --help`)")
    if args.gpu and args.cc:
        raise UsageError("--gpu and --cc both name the GPU; pass one")
    platform = args.platform or ("windows" if sys.platform == "win32" else "linux")
    data = answer(args.driver, args.gpu, args.cc, args.torch, platform)
    sys.stdout.write(json.dumps(data, indent=2) + "\n" if args.json else render(data))
    return EXIT_OK
