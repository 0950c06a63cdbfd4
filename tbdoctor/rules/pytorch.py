"""Rules of the PyTorch section (torch.*) that need no GPU facts: the build,
its import, CUDA availability as torch reports it, and torch.utils.tensorboard.
The GPU combinations (CPU build on a GPU machine, driver, arch list) are in
``gpu_builds``. Pure.
"""

from __future__ import annotations

from tbdoctor.findings import ERROR, INFO, OK, WARNING, Finding
from tbdoctor.rules import gpu_builds
from tbdoctor.rules.common import import_failed


def gpu_list(facts: dict) -> list[dict] | None:
    """NVIDIA GPUs from the gpu probe; None when unknown."""
    gpu = facts.get("gpu")
    if not isinstance(gpu, dict) or not isinstance(gpu.get("gpus"), list):
        return None
    return gpu["gpus"]


def build_label(t: dict) -> str:
    if t.get("cuda"):
        cudnn = t.get("cudnn")
        cudnn_text = f", cuDNN {cudnn // 10000}.{cudnn // 100 % 100}" if isinstance(cudnn, int) and cudnn > 10000 \
            else (f", cuDNN {cudnn}" if cudnn else "")
        return f"CUDA {t['cuda']} build{cudnn_text}"
    if t.get("hip"):
        return f"ROCm (HIP {t['hip']}) build"
    return "CPU build"


def version(facts: dict) -> list[Finding]:
    t = facts.get("torch")
    if t is None:
        return []
    if not t.get("installed"):
        return [Finding("torch.version", INFO, "PyTorch is not installed",
                        detail="tensorboardX and TensorBoard work without it.")]
    if not t.get("import_ok"):
        return [Finding("torch.version", INFO, f"torch {t.get('dist_version')} is installed")] + \
            import_failed(facts, "torch", "torch", t.get("dist_version"), t.get("import_error") or {})
    label = build_label(t)
    devices = t.get("devices") or []
    if devices:
        where = ", ".join(f"{d['name']} (sm_{d['capability'].replace('.', '')})" for d in devices)
        detail = f"CUDA is available: {len(devices)} device(s): {where}"
    elif t.get("mps_available"):
        detail = "Apple MPS is available."
    else:
        detail = "Runs on the CPU."
    extras = [f"NCCL {t['nccl']}" if t.get("nccl") else "", f"arch list {' '.join(t['arch_list'])}" if t.get("arch_list") else ""]
    detail += "".join(f" {e}." for e in extras if e)
    return [Finding("torch.version", OK, f"torch {t['version']} ({label})", detail=detail)]


def cuda_unavailable(facts: dict) -> list[Finding]:
    """A CUDA/ROCm build that cannot use CUDA: fine without a GPU, an error with one."""
    t = facts.get("torch")
    if not t or not t.get("import_ok") or not (t.get("cuda") or t.get("hip")) or t.get("cuda_available") is not False:
        return []
    reason = t.get("cuda_error") or "torch.cuda.is_available() is False and torch gave no reason"
    gpus = gpu_list(facts)
    no_driver = "no NVIDIA driver" in reason or "Found no NVIDIA driver" in reason
    if gpus == [] or (gpus is None and no_driver):
        return [Finding("torch.cuda-unavailable", INFO,
                        f"{build_label(t)} on a machine without an NVIDIA GPU: torch runs on the CPU",
                        detail=f"torch says: {reason}",
                        hint="Fine for CPU work; the CPU build (--index-url https://download.pytorch.org/whl/cpu) is "
                             "several GB smaller.")]
    if gpus is None:
        return [Finding("torch.cuda-unavailable", WARNING, f"torch cannot use CUDA: {reason}",
                        hint="Run `nvidia-smi`; without a working driver torch falls back to the CPU.")]
    if any(f.id == "torch.driver-too-old" for f in gpu_builds.driver_too_old(facts)):
        return []  # reported there, with both fixes
    return [Finding("torch.cuda-unavailable", ERROR,
                    f"torch cannot use the {len(gpus)} NVIDIA GPU(s) on this machine: {reason}",
                    hint="Check `nvidia-smi`, that /dev/nvidia* exists (in a container: run it with --gpus all), "
                         "and that CUDA_VISIBLE_DEVICES does not hide the GPUs.")]


def utils_tensorboard(facts: dict) -> list[Finding]:
    """torch.utils.tensorboard, the SummaryWriter most PyTorch code uses."""
    t = facts.get("torch")
    if not t or not t.get("import_ok") or t.get("utils_tensorboard_ok") is not False:
        return []
    error = t.get("utils_tensorboard_error") or {}
    tb = facts.get("tensorboard") or {}
    if error.get("reason") == "missing-module" and "'tensorboard'" in (error.get("line") or ""):
        return []  # tensorboard.missing says so, with the fix
    if tb.get("installed") and (tb.get("import_error") or tb.get("protos_error")):
        return [Finding("torch.utils-tensorboard", WARNING,
                        "torch.utils.tensorboard fails because TensorBoard itself fails to import (see TensorBoard)",
                        detail=error.get("line") or "", verbose_detail=error.get("traceback") or "")]
    return import_failed(facts, "torch", "torch", t.get("version"), error, what="import torch.utils.tensorboard",
                         finding_id="torch.utils-tensorboard")


RULES = (version, cuda_unavailable, utils_tensorboard)
