"""Rules that combine a framework's build with the machine's NVIDIA GPUs and
driver (facts["gpu"]): a CPU-only torch on a GPU machine, a driver too old for
torch's or TensorFlow's CUDA build, a GPU torch has no kernels for, a CUDA
TensorFlow or JAX that sees no GPU. The answers come from ``tbdoctor.compat``
(the bundled knowledge base). Pure.
"""

from __future__ import annotations

from packaging.version import InvalidVersion, Version

from tbdoctor import compat, tables
from tbdoctor.findings import ERROR, WARNING, Finding, Fix
from tbdoctor.rules.common import installed, manual, pip_install, pip_uninstall

_DRIVER_URL = "https://www.nvidia.com/Download/index.aspx"
_COMPANIONS = ("torchvision", "torchaudio")  # built per CUDA variant: reinstalled with torch


def _gpus(facts: dict) -> list[dict]:
    gpu = facts.get("gpu")
    return [g for g in (gpu or {}).get("gpus") or () if isinstance(g, dict)] if isinstance(gpu, dict) else []


def _platform(facts: dict) -> str:
    gpu = facts.get("gpu") or {}
    if (gpu.get("wsl") or {}).get("detected"):
        return "wsl"
    return (facts.get("python") or {}).get("platform") or facts.get("host_platform") or "linux"


def _names(gpus: list[dict]) -> str:
    return ", ".join(sorted({g.get("name") or "NVIDIA GPU" for g in gpus}))


def _sm(cc: str) -> str:
    return "sm_" + cc.replace(".", "")


def _torch(facts: dict) -> dict | None:
    t = facts.get("torch")
    return t if t and t.get("import_ok") and t.get("version") else None


def _variant_fixes(facts: dict, torch_version: str, variant: str) -> tuple[Fix, ...]:
    """Uninstall torch (and its per-variant companions), install the same release from the variant's index."""
    base = torch_version.split("+", 1)[0]
    have = installed(facts)
    names = ["torch"] + [n for n in _COMPANIONS if n in have]
    reqs = [f"torch=={base}"] + [f"{n}=={have[n]['version'].split('+', 1)[0]}" for n in names[1:]]
    return (pip_uninstall(facts, *names),
            pip_install(facts, *reqs, options=("--index-url", compat.torch_index_url(variant))))


def _best(facts: dict, torch_version: str, gpus: list[dict]) -> str | None:
    driver = (facts.get("gpu") or {}).get("driver_version")
    if not driver:
        return None
    cc = next((g["compute_capability"] for g in gpus if g.get("compute_capability")), None)
    return compat.best_torch_variant(driver, torch_version, cc=cc, platform=_platform(facts))


def cpu_build_on_gpu(facts: dict) -> list[Finding]:
    t, gpus = _torch(facts), _gpus(facts)
    if not t or not gpus or t.get("cuda") or t.get("hip"):
        return []
    driver = (facts.get("gpu") or {}).get("driver_version")
    variant = _best(facts, t["version"], gpus)
    title = f"torch {t['version']} is a CPU-only build, but this machine has {len(gpus)} NVIDIA GPU(s): {_names(gpus)}"
    detail = f"torch.version.cuda is None: CUDA is never used. Driver {driver or 'unknown'}."
    if variant is None and compat.newer_than_kb("torch", t["version"]):
        return [Finding("torch.cpu-build-on-gpu", ERROR, title, detail=detail,
                        hint=f"torch {t['version'].split('+')[0]} is newer than tbdoctor's knowledge of "
                             f"{compat.kb_date()}, so which of its CUDA builds driver {driver or '(unknown)'} runs is "
                             "not known here: pick one at https://pytorch.org/get-started/locally/.")]
    if variant is None:
        return [Finding("torch.cpu-build-on-gpu", ERROR, title, detail=detail,
                        hint=f"No CUDA build of torch {t['version'].split('+')[0]} is known to run on driver "
                             f"{driver or '(unknown)'}: upgrade the driver ({_DRIVER_URL}), then install a CUDA build.")]
    return [Finding("torch.cpu-build-on-gpu", ERROR, title, detail=detail,
                    hint=f"Install the {variant} build (CUDA {variant_cuda(variant)}, which driver {driver} runs).",
                    fixes=_variant_fixes(facts, t["version"], variant))]


def variant_cuda(variant: str) -> str:
    return compat.variant_cuda(variant) or variant


def driver_too_old(facts: dict) -> list[Finding]:
    """torch's or TensorFlow's CUDA build needs a newer driver than the installed one."""
    gpus, gpu = _gpus(facts), facts.get("gpu") or {}
    driver = gpu.get("driver_version")
    if not gpus or not driver:
        return []
    platform = _platform(facts)
    findings = []
    t = _torch(facts)
    if t and t.get("cuda") and compat.driver_supports_cuda(driver, t["cuda"], platform) is False:
        need = compat.min_driver(t["cuda"], platform)
        variant = _best(facts, t["version"], gpus)
        hint = f"Upgrade the NVIDIA driver to {need} or newer ({_DRIVER_URL})"
        fixes: tuple[Fix, ...] = (manual(f"upgrade the NVIDIA driver to >= {need}: {_DRIVER_URL}"),)
        if variant:
            hint += f", or install the {variant} build of torch (CUDA {variant_cuda(variant)}), which this driver runs"
            fixes = _variant_fixes(facts, t["version"], variant)
        findings.append(Finding(
            "torch.driver-too-old", ERROR,
            f"NVIDIA driver {driver} is too old for torch {t['version']} (CUDA {t['cuda']} needs driver >= {need})",
            detail=f"torch says: {t.get('cuda_error') or 'CUDA is not available'}.", hint=hint + ".", fixes=fixes))
    tf = facts.get("tensorflow") or {}
    build = tf.get("build") or {}
    cuda = build.get("cuda_version")
    if tf.get("import_ok") and build.get("is_cuda_build") and cuda \
            and compat.driver_supports_cuda(driver, cuda, platform) is False:
        need = compat.min_driver(cuda, platform)
        findings.append(Finding(
            "tensorflow.driver-too-old", ERROR,
            f"NVIDIA driver {driver} is too old for TensorFlow {tf.get('version')} (CUDA {cuda} needs driver >= {need})",
            detail="TensorFlow will list no GPU and run on the CPU.",
            hint=f"Upgrade the NVIDIA driver to {need} or newer ({_DRIVER_URL}), or install an older TensorFlow "
                 "built for a CUDA this driver runs.",
            fixes=(manual(f"upgrade the NVIDIA driver to >= {need}: {_DRIVER_URL}"),)))
    return findings


def arch_unsupported(facts: dict) -> list[Finding]:
    t, gpus = _torch(facts), _gpus(facts)
    if not t or not t.get("cuda") or not t.get("arch_list") or not gpus:
        return []
    bad = [g for g in gpus if g.get("compute_capability")
           and not compat.arch_supported(g["compute_capability"], t["arch_list"])]
    if not bad:
        return []
    g = bad[0]
    cc = g["compute_capability"]
    variant = _best(facts, t["version"], bad)
    hint = f"Install a torch build with code for {_sm(cc)}"
    fixes: tuple[Fix, ...] = ()
    if variant and variant != f"cu{t['cuda'].replace('.', '')}":
        hint = f"Install the {variant} build of torch, which has code for {_sm(cc)}"
        fixes = _variant_fixes(facts, t["version"], variant)
    return [Finding("torch.arch-unsupported", ERROR,
                    f"{g.get('name')} ({_sm(cc)}) is not supported by torch {t['version']}, built for "
                    f"{' '.join(t['arch_list'])}",
                    detail="The first CUDA operation fails with 'no kernel image is available for execution on "
                           "the device'.", hint=hint + ".", fixes=fixes)]


def frameworks_see_no_gpu(facts: dict) -> list[Finding]:
    """A CUDA TensorFlow or a JAX that lists no GPU on a machine with a working driver."""
    gpus, gpu = _gpus(facts), facts.get("gpu") or {}
    if not gpus or not gpu.get("driver_version"):
        return []
    findings = []
    tf = facts.get("tensorflow") or {}
    build = tf.get("build") or {}
    cuda_ok = not build.get("cuda_version") or compat.driver_supports_cuda(
        gpu["driver_version"], build["cuda_version"], _platform(facts)) is not False
    if tf.get("import_ok") and build.get("is_cuda_build") and tf.get("gpus") == [] and cuda_ok:
        have = installed(facts)
        fixes = () if "nvidia-cudnn-cu12" in have else \
            (pip_install(facts, f"tensorflow[and-cuda]=={tf.get('version')}"),)
        findings.append(Finding(
            "tensorflow.gpu-not-visible", WARNING,
            f"TensorFlow {tf.get('version')} sees none of the {len(gpus)} NVIDIA GPU(s)",
            detail="Without the nvidia-*-cu12 wheels ('tensorflow[and-cuda]') TensorFlow >= 2.14 logs "
                   "'Could not find cuda drivers on your machine, GPU will not be used.'",
            hint="Install tensorflow[and-cuda] of the same version." if fixes else
                 "The CUDA wheels are installed: see TensorFlow's pip.md step 6 (symlinks in the tensorflow folder).",
            fixes=fixes))
    jax = facts.get("jax") or {}
    if jax.get("import_ok") and jax.get("backend") == "cpu":
        cuda13 = compat.driver_supports_cuda(gpu["driver_version"], "13.0", _platform(facts))
        extra = "cuda13" if cuda13 else "cuda12"
        findings.append(Finding(
            "jax.cpu-fallback", WARNING, f"JAX runs on the CPU although this machine has {_names(gpus)}",
            detail="The installed jaxlib has no CUDA plugin.", hint=f"Install jax[{extra}].",
            fixes=(pip_install(facts, f"jax[{extra}]", options=("--upgrade",)),)))
    return findings


def tensorflow_gpu_support(facts: dict) -> list[Finding]:
    """GPUs TensorFlow's wheels cannot use: native Windows after 2.10, Blackwell (compute capability >= 10)."""
    tf, gpus = facts.get("tensorflow") or {}, _gpus(facts)
    if not tf.get("import_ok") or not gpus:
        return []
    try:
        version = Version(str(tf.get("version")).split("+")[0])
    except InvalidVersion:
        return []
    last_windows = tables.load("tensorflow")["windows_gpu"]["last_gpu_version"]
    if _platform(facts) == "win32" and version > Version(last_windows):
        return [Finding("tensorflow.windows-no-gpu", WARNING,
                        f"TensorFlow {version} has no GPU support on native Windows ({last_windows} was the last)",
                        detail=f"It runs on the CPU and ignores {_names(gpus)}.",
                        hint="Use WSL2 with `pip install 'tensorflow[and-cuda]'`, or tensorflow<2.11 with conda's "
                             "cudatoolkit=11.2 cudnn=8.1.0 (Python <= 3.10).")]
    new = [g for g in gpus if (g.get("compute_capability") or "0").split(".")[0].isdigit()
           and int(g["compute_capability"].split(".")[0]) >= 10]
    if (tf.get("build") or {}).get("is_cuda_build") and new and not compat.newer_than_kb("tensorflow", version):
        cc = new[0]["compute_capability"]
        return [Finding("tensorflow.arch-unsupported", WARNING,
                        f"TensorFlow {version} wheels have no kernels for {new[0].get('name')} ({_sm(cc)})",
                        detail="It JIT-compiles PTX for it, which fails: CUDA_ERROR_INVALID_PTX / "
                               "'PTX version ... does not support target' (tensorflow#90291, #97387).",
                        hint="No pip fix is known: use NVIDIA's NGC TensorFlow container, run TensorFlow on the CPU, "
                             "or use PyTorch on this GPU.")]
    return []


RULES = (cpu_build_on_gpu, driver_too_old, arch_unsupported, frameworks_see_no_gpu, tensorflow_gpu_support)
