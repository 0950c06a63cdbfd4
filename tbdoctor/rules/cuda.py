"""Rules of the CUDA section (cuda.*): toolkits (nvcc) against the driver and against
CUDA_HOME, the libraries the loader finds, and LD_LIBRARY_PATH putting one CUDA's
libraries in front of another's. Pure.
"""

from __future__ import annotations

import os

from tbdoctor import compat
from tbdoctor.findings import INFO, OK, WARNING, Finding, Fix
from tbdoctor.rules.gpu import platform_of


def _kits(facts: dict) -> list[dict]:
    return [k for k in ((facts.get("cuda") or {}).get("toolkits") or ()) if k.get("version")]


def _where(kit: dict) -> str:
    return kit.get("root") or kit.get("nvcc") or "?"


def _major(version) -> str | None:
    return str(version).split(".", 1)[0] if version else None


def toolkit(facts: dict) -> list[Finding]:
    cuda = facts.get("cuda")
    if cuda is None:
        return []
    kits = _kits(facts)
    driver = (facts.get("gpu") or {}).get("driver_version")
    if not kits:
        broken = [k for k in cuda.get("toolkits") or () if k.get("error")]
        detail = "\n".join(f"{k['nvcc']}: {k['error']}" for k in broken)
        return [Finding("cuda.toolkit", INFO, "No CUDA toolkit (nvcc) found",
                        detail=(detail + "\n" if detail else "") + "Not needed to run pip-installed PyTorch or "
                               "TensorFlow: their wheels bundle the CUDA runtime. Needed only to compile CUDA code.")]
    active = next((k for k in kits if k.get("on_path")), None)
    main = active or kits[0]
    others = [k for k in kits if k is not main]
    title = f"CUDA toolkit {main['version']} (nvcc {main['nvcc']}" + (")" if active else ", not on PATH)")
    if others:
        title += "; also " + ", ".join(f"{k['version']} at {_where(k)}" for k in others)
    lines = [f"{k['release']} at {_where(k)} (nvcc {', '.join(k['paths'])}; found via {', '.join(k['found_via'])})"
             for k in kits]
    if not driver:
        lines.append("No NVIDIA driver here: this toolkit can compile CUDA code, not run it.")
    return [Finding("cuda.toolkit", OK, title, detail="\n".join(lines))]


def driver_too_old(facts: dict) -> list[Finding]:
    driver = (facts.get("gpu") or {}).get("driver_version")
    if not driver or facts.get("cuda") is None:
        return []
    platform = platform_of(facts)
    findings = []
    for kit in _kits(facts):
        if not (kit.get("on_path") or kit.get("from_cuda_home")):
            continue
        if compat.driver_supports_cuda(driver, kit["version"], platform) is not False:
            continue
        need = compat.min_driver(kit["version"], platform)
        ships = compat.toolkit_driver(kit["release"] or kit["version"], platform)
        findings.append(Finding(
            "cuda.driver-too-old-for-toolkit", WARNING,
            f"Driver {driver} is too old for the CUDA {kit['version']} toolkit at {_where(kit)} "
            f"(needs driver >= {need})",
            detail=f"nvcc {kit['release']} compiles, but what it builds cannot run: CUDA {_major(kit['version'])}.x "
                   f"needs driver {need} or newer (minor-version compatibility)"
                   + (f"; the toolkit ships with {ships}" if ships else "") + ". Programs fail with 'CUDA driver "
                   "version is insufficient for CUDA runtime version'.",
            hint=f"Upgrade the NVIDIA driver to {need} or newer, or use a CUDA toolkit the driver supports "
                 f"(up to {(facts.get('gpu') or {}).get('cuda_driver_version') or compat.full_support_cuda(driver, platform) or '?'}).",
        ))
    return findings


def toolkit_vs_gpu(facts: dict) -> list[Finding]:
    gpus = (facts.get("gpu") or {}).get("gpus") or []
    findings = []
    for kit in _kits(facts):
        if not (kit.get("on_path") or kit.get("from_cuda_home")):
            continue
        for cc in sorted({g["compute_capability"] for g in gpus if g.get("compute_capability")}):
            if compat.cuda_supports_cc(kit["version"], cc) is not False:
                continue
            arch = compat.architecture(cc) or {}
            names = sorted({g["name"] for g in gpus if g.get("compute_capability") == cc})
            limits = " to ".join(x for x in (arch.get("min_cuda"), arch.get("max_cuda")) if x)
            findings.append(Finding(
                "cuda.toolkit-cannot-target-gpu", WARNING,
                f"The CUDA {kit['version']} toolkit cannot compile for {', '.join(names)} "
                f"(compute capability {cc}, {arch.get('name', 'unknown')})",
                detail=f"Toolkits that build for {arch.get('name', 'it')}: CUDA {limits}." if limits else "",
                hint="Install a CUDA toolkit of that range for building CUDA code for this GPU "
                     "(pip-installed frameworks bring their own runtime and are not affected by the toolkit).",
            ))
    return findings


def home_vs_path(facts: dict) -> list[Finding]:
    cuda = facts.get("cuda")
    if cuda is None:
        return []
    env = cuda.get("env") or {}
    var = next((v for v in ("CUDA_HOME", "CUDA_PATH", "CUDA_ROOT") if env.get(v)), None)
    if var is None:
        return []
    kits = _kits(facts)
    on_path = next((k for k in kits if k.get("on_path")), None)
    home = next((k for k in kits if k.get("from_cuda_home")), None)
    if home is None:
        fixes = (Fix("env", f"export {var}={on_path['root']}"),) if on_path and on_path.get("root") else \
            (Fix("env", f"unset {var}"),)
        return [Finding("cuda.cuda-home-invalid", WARNING, f"{var}={env[var]} has no working bin/nvcc",
                        detail="Builds of CUDA extensions (torch.utils.cpp_extension, setup.py builds) take the "
                               f"toolkit from {var} and fail.",
                        hint=f"Point {var} at a CUDA toolkit folder, or unset it.", fixes=fixes)]
    if on_path is None or on_path is home or on_path.get("release") == home.get("release"):
        return []
    return [Finding(
        "cuda.toolkit-mismatch", WARNING,
        f"Two CUDA toolkits disagree: nvcc on PATH is {on_path['version']} ({_where(on_path)}), "
        f"{var} is {home['version']} ({_where(home)})",
        detail="A shell's nvcc and extension builds that read CUDA_HOME compile with different CUDA versions; "
               "the objects they produce do not link or load together.",
        hint=f"Make them agree: point {var} at the toolkit on PATH, or put {var}/bin first on PATH.",
        fixes=tuple(Fix("env", c) for c in (
            [f"export {var}={on_path['root']}"] if on_path.get("root") else [])
            + [f"export PATH={os.path.join(env[var], 'bin')}:$PATH"]),
    )]


def libraries(facts: dict) -> list[Finding]:
    cuda = facts.get("cuda")
    if cuda is None:
        return []
    libs = cuda.get("libraries") or {}
    parts = []
    for name, found in libs.items():
        for item in found:
            origin = item.get("wheel") and f"pip {item['wheel']} {item.get('wheel_version')}" or item["source"]
            parts.append(f"{name} {item.get('version') or '?'} ({origin}): {item['path']}")
    title = "CUDA libraries: " + (", ".join(sorted({f"{n} {(f[0].get('version') or '?')}" for n, f in libs.items() if f}))
                                  or "none found by the loader or in pip wheels")
    wheels = cuda.get("pip_wheels")
    if wheels:
        parts.append("pip wheels: " + ", ".join(f"{w['name']} {w['version']}" for w in wheels))
    elif wheels is None:
        parts.append(f"pip wheels: unknown ({cuda.get('pip_wheels_error')})")
    return [Finding("cuda.libraries", INFO, title, detail="\n".join(parts))]


def libcuda_missing(facts: dict) -> list[Finding]:
    cuda, gpu = facts.get("cuda"), facts.get("gpu")
    if not cuda or not gpu or not gpu.get("gpus") or not cuda.get("ldconfig") or (cuda.get("libraries") or {}).get("libcuda"):
        return []
    in_container = gpu.get("container")
    return [Finding(
        "cuda.libcuda-missing", WARNING,
        "The driver lists GPUs but the dynamic loader finds no libcuda.so.1: CUDA programs cannot start",
        detail="Neither `ldconfig -p` nor LD_LIBRARY_PATH has the CUDA driver library; frameworks report no GPU.",
        hint=("In a container, the runtime injects libcuda only with the compute capability: run with "
              "NVIDIA_DRIVER_CAPABILITIES=compute,utility (or all)." if in_container else
              "Reinstall the driver's CUDA library package (e.g. libnvidia-compute-<branch>) and run `sudo ldconfig`."),
        fixes=(Fix("env", "export NVIDIA_DRIVER_CAPABILITIES=compute,utility"),) if in_container else
              (Fix("manual", "sudo ldconfig"),),
    )]


def _without(entries: list[str], entry: str) -> Fix:
    rest = [e for e in entries if e != entry]
    return Fix("env", "export LD_LIBRARY_PATH=" + ":".join(rest) if rest else "unset LD_LIBRARY_PATH")


def ld_library_path_mixed(facts: dict) -> list[Finding]:
    cuda = facts.get("cuda")
    if not cuda or not cuda.get("ld_library_path"):
        return []
    findings = []
    on_path = next((k for k in _kits(facts) if k.get("on_path")), None)
    for name, found in (cuda.get("libraries") or {}).items():
        first = next((f for f in found if f["source"] == "LD_LIBRARY_PATH"), None)
        if first is None or name == "libcuda":
            continue
        major = _major(first.get("version"))
        others = {(_major(f.get("version")), f.get("wheel") or f.get("entry") or f["source"]) for f in found
                  if f is not first and f["source"] in ("LD_LIBRARY_PATH", "pip") and _major(f.get("version")) != major}
        if name == "libcudart" and on_path and _major(on_path["version"]) != major:
            others.add((_major(on_path["version"]), f"the CUDA {on_path['version']} toolkit on PATH"))
        if not others:
            continue
        against = "; ".join(f"{name} {m} from {where}" for m, where in sorted(others, key=str))
        findings.append(Finding(
            "cuda.ld-library-path-mixed", WARNING,
            f"LD_LIBRARY_PATH puts {name} {major} ({first['entry']}) in front of {against}",
            detail="LD_LIBRARY_PATH wins over the RUNPATH of pip wheels and over the toolkit's own libraries, so "
                   "programs load this copy; a different major version fails with undefined symbols or "
                   "'version mismatch' errors (cuDNN, NCCL) at import or first use.",
            hint=f"Remove {first['entry']} from LD_LIBRARY_PATH (pip wheels find their own libraries).",
            fixes=(_without(cuda["ld_library_path"], first["entry"]),),
        ))
    return findings


RULES = (toolkit, libraries, driver_too_old, toolkit_vs_gpu, home_vs_path, libcuda_missing, ld_library_path_mixed)
