"""Rules of the policy section (policy.*): the facts judged against the policy
in ``facts["policy"]`` (put there by ``check`` from ``tbdoctor/policy.py``).

Pure. A requirement whose facts are unknown (a probe failed or did not run) is
a violation that says so: a CI policy must not pass on missing evidence.
Facts read: ``gpu.gpus`` (list) and ``gpu.driver_version``; ``torch.cuda``
(None for a CPU build) and ``torch.cuda_available``; ``python.version``;
``packages``.
"""

from __future__ import annotations

import re

from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version

from tbdoctor.findings import ERROR, INFO, OK, Finding
from tbdoctor.rules.common import installed, pip_install

_TORCH_LOCAL_CUDA = re.compile(r"\+cu(\d+)(\d)$")  # 2.4.0+cu124 -> 12.4


def _matches(spec: str, version) -> bool | None:
    """Whether ``version`` satisfies ``spec`` ('' = any); None when it is not a version."""
    if not spec:
        return True
    try:
        return SpecifierSet(spec).contains(Version(str(version)), prereleases=True)
    except InvalidVersion:
        return None


def gpu_count(facts: dict) -> int | None:
    gpu = facts.get("gpu")
    gpus = gpu.get("gpus") if isinstance(gpu, dict) else None
    return len(gpus) if isinstance(gpus, list) else None


def torch_cuda_build(facts: dict) -> tuple[bool, str | None]:
    """(known, CUDA version torch was built with or None for a CPU build)."""
    torch = facts.get("torch")
    if isinstance(torch, dict) and "cuda" in torch:
        return True, torch["cuda"]
    dist = installed(facts).get("torch")
    if dist:
        version = dist["version"]
        m = _TORCH_LOCAL_CUDA.search(version)
        if m:
            return True, f"{m[1]}.{m[2]}"
        if version.endswith("+cpu"):
            return True, None
    return False, None


def _gpus(req: dict, facts: dict) -> list[Finding]:
    want = req["gpus"]
    have = gpu_count(facts)
    noun = "GPU" if want == 1 else "GPUs"
    if have is None:
        return [Finding("policy.gpus", ERROR, f"Policy requires at least {want} {noun}; the GPU count is unknown",
                       detail="No GPU facts: the gpu probe failed or did not run (see its finding).",
                       hint="Run the check on the machine that must have the GPUs, without --only.")]
    if have < want:
        return [Finding("policy.gpus", ERROR, f"Policy requires at least {want} {noun}; {have} found",
                       detail="GPUs counted: those the NVIDIA driver reports.",
                       hint="Run on a machine (or a CI runner / container with GPU access) that has them.")]
    return []


def _cuda(req: dict, facts: dict) -> list[Finding]:
    wanted = "a CUDA build of torch" if req["cuda"] else "a CPU build of torch"
    if "torch" not in installed(facts) and facts.get("packages") is not None:
        return [Finding("policy.cuda", ERROR, f"Policy requires {wanted}; torch is not installed")]
    known, build = torch_cuda_build(facts)
    if not known:
        return [Finding("policy.cuda", ERROR, f"Policy requires {wanted}; torch's build is unknown",
                        detail="No torch facts: the torch probe failed or did not run.")]
    if not req["cuda"]:
        if build is not None:
            return [Finding("policy.cuda", ERROR, f"Policy requires {wanted}; this one is built with CUDA {build}",
                            hint="Install the CPU wheel from https://download.pytorch.org/whl/cpu")]
        return []
    if build is None:
        return [Finding("policy.cuda", ERROR, f"Policy requires {wanted}; this one is a CPU build",
                        hint="Install a CUDA variant of torch that matches the driver (see the torch section).")]
    torch = facts.get("torch")
    available = torch.get("cuda_available") if isinstance(torch, dict) else None
    if available is None:
        return [Finding("policy.cuda", ERROR, f"Policy requires torch to use CUDA; torch is built with CUDA {build} "
                                              "but whether it sees a GPU is unknown",
                        detail="No torch facts: the torch probe failed or did not run.")]
    if not available:
        return [Finding("policy.cuda", ERROR, f"Policy requires torch to use CUDA; torch (CUDA {build}) sees no GPU",
                        hint="See the gpu and torch sections for the reason "
                             "(driver, device nodes, CUDA_VISIBLE_DEVICES).")]
    return []


def _versioned(label: str, spec: str, version, unknown_detail: str) -> tuple[str, str] | None:
    """(title, detail) of a violated version requirement, None when it is met."""
    if version is None:
        return f"Policy requires {label} {spec}; its version is unknown", unknown_detail
    ok = _matches(spec, version)
    if ok is None:
        return f"Policy requires {label} {spec}; version {version!r} cannot be compared", ""
    if not ok:
        return f"Policy requires {label} {spec}; found {version}", ""
    return None


def _packages(req: dict, facts: dict) -> list[Finding]:
    if facts.get("packages") is None:
        return [Finding("policy.package", ERROR, "Policy requires packages; the installed packages are unknown",
                       detail="The packages probe failed (see its finding).")]
    have = installed(facts)
    findings = []
    for canonical, want in req["packages"].items():
        name, spec = want["name"], want["spec"]
        wanted = f"{name}{spec}" if spec else name
        dist = have.get(canonical)
        if dist is None:
            findings.append(Finding("policy.package", ERROR, f"Policy requires {wanted}; {name} is not installed",
                                   fixes=(pip_install(facts, wanted),)))
        elif not _matches(spec, dist["version"]):
            findings.append(Finding("policy.package", ERROR, f"Policy requires {wanted}; {dist['version']} is installed",
                                   fixes=(pip_install(facts, wanted),)))
    return findings


def policy(facts: dict) -> list[Finding]:
    pol = facts.get("policy")
    if not pol:
        return []
    req = pol.get("require") or {}
    findings: list[Finding] = []
    if "gpus" in req:
        findings += _gpus(req, facts)
    if "cuda" in req:
        findings += _cuda(req, facts)
    if "python" in req:
        bad = _versioned("Python", req["python"], (facts.get("python") or {}).get("version"),
                         "The python probe failed (see its finding).")
        if bad:
            findings.append(Finding("policy.python", ERROR, bad[0], detail=bad[1]))
    if "driver" in req:
        gpu = facts.get("gpu")
        bad = _versioned("NVIDIA driver", req["driver"], gpu.get("driver_version") if isinstance(gpu, dict) else None,
                         "No driver version in the GPU facts (no NVIDIA driver, or the gpu probe failed).")
        if bad:
            findings.append(Finding("policy.driver", ERROR, bad[0], detail=bad[1]))
    if "torch_cuda" in req:
        known, build = torch_cuda_build(facts)
        bad = ((f"Policy requires torch built with CUDA {req['torch_cuda']}; this torch is a CPU build", "")
               if known and build is None else
               _versioned("torch built with CUDA", req["torch_cuda"], build,
                          "Neither torch facts nor a +cuXYZ version tag tell torch's CUDA build."))
        if bad:
            findings.append(Finding("policy.torch-cuda", ERROR, bad[0], detail=bad[1]))
    if "packages" in req:
        findings += _packages(req, facts)
    count = sum(len(v) if k == "packages" else 1 for k, v in req.items())
    source = pol.get("source", "the policy")
    if findings:
        head = Finding("policy.summary", INFO, f"{source}: {len(findings)} of {count} requirements not met")
    else:
        head = Finding("policy.summary", OK, f"{source}: all {count} requirements met")
    return [head, *findings]


RULES = (policy,)
