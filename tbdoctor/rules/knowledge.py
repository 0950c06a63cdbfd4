"""Where the bundled knowledge base ends: a driver, CUDA toolkit, torch, TensorFlow
or TensorBoard newer than anything in ``checks/`` is said to be so
(``<section>.newer-than-knowledge``), so that no answer about it is read as checked.
``compat`` never matches such a version to an older row. Pure."""

from __future__ import annotations

from tbdoctor import compat
from tbdoctor.findings import INFO, Finding


def _versions(facts: dict):
    """(finding id, kind, label, version) of each thing installed or present."""
    gpu = facts.get("gpu") or {}
    if gpu.get("driver_version"):
        yield "gpu.driver-newer-than-knowledge", "driver", "NVIDIA driver", gpu["driver_version"]
    for kit in (facts.get("cuda") or {}).get("toolkits") or ():
        if kit.get("version"):
            yield "cuda.newer-than-knowledge", "cuda", "CUDA toolkit", kit["version"]
    torch = facts.get("torch") or {}
    if torch.get("installed"):
        yield "torch.newer-than-knowledge", "torch", "torch", torch.get("version") or torch.get("dist_version")
    tf = facts.get("tensorflow") or {}
    if tf.get("installed"):
        yield "tensorflow.newer-than-knowledge", "tensorflow", tf.get("distribution") or "tensorflow", \
            tf.get("dist_version")
    tb = facts.get("tensorboard") or {}
    if tb.get("installed"):
        yield "tensorboard.newer-than-knowledge", "tensorboard", tb.get("distribution") or "tensorboard", \
            tb.get("version")


def newer_than_knowledge(facts: dict) -> list[Finding]:
    findings, seen = [], set()
    for finding_id, kind, label, version in _versions(facts):
        if (finding_id, version) in seen or not compat.newer_than_kb(kind, version):
            continue
        seen.add((finding_id, version))
        findings.append(Finding(
            finding_id, INFO,
            f"{label} {version} is newer than tbdoctor's knowledge of {compat.kb_date()}",
            detail=f"The newest {kind} release tbdoctor knows is {compat.newest_known(kind)}: what this version "
                   "supports and needs (CUDA, drivers, GPUs, Python) is not checked, rather than guessed from an "
                   "older release.",
            hint="Upgrade tbdoctor for a newer knowledge base."))
    return findings


RULES = (newer_than_knowledge,)
