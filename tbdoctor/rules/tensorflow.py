"""Rules of the TensorFlow section (tensorflow.*) that need no GPU facts: the
build, its import, and whether this Python is one TensorFlow supports (the
tested configurations in ``checks/tensorflow.toml``, through ``compat``). Pure."""

from __future__ import annotations

from packaging.version import Version

from tbdoctor import compat, tables
from tbdoctor.findings import INFO, OK, WARNING, Finding
from tbdoctor.rules.common import import_failed


def _python_minor(facts: dict) -> str | None:
    info = (facts.get("python") or {}).get("version_info")
    return f"{info[0]}.{info[1]}" if info else None


def _supported(tf_version: str) -> tuple[str, str] | None:
    config = compat.tensorflow_config(tf_version)
    return (config["python_min"], config["python_max"]) if config else None


def _minor_key(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split("."))


def version(facts: dict) -> list[Finding]:
    tf = facts.get("tensorflow")
    if tf is None:
        return []
    if not tf.get("installed"):
        newest = max(tables.load("tensorflow")["linux_gpu"]["list"], key=lambda r: Version(r["version"]))
        low, high = newest["python_min"], newest["python_max"]
        newest = newest["version"]
        py = _python_minor(facts)
        note = ""
        if py and not _minor_key(low) <= _minor_key(py) <= _minor_key(high):
            note = f" (no TensorFlow {newest} wheel exists for Python {py}: it supports {low}-{high})"
        return [Finding("tensorflow.version", INFO, "TensorFlow is not installed" + note,
                        detail="Optional: TensorBoard runs without it (with a reduced feature set).")]
    label = tf.get("distribution") or "tensorflow"
    if not tf.get("import_ok"):
        return [Finding("tensorflow.version", INFO, f"{label} {tf.get('dist_version')} is installed")] + \
            import_failed(facts, "tensorflow", label, tf.get("dist_version"), tf.get("import_error") or {})
    build = tf.get("build") or {}
    if build.get("is_cuda_build"):
        kind = f"CUDA {build.get('cuda_version')} / cuDNN {build.get('cudnn_version')} build"
    elif build.get("is_rocm_build"):
        kind = "ROCm build"
    else:
        kind = "CPU build"
    gpus = tf.get("gpus")
    detail = f"GPUs it sees: {', '.join(gpus)}" if gpus else "It sees no GPU."
    return [Finding("tensorflow.version", OK, f"TensorFlow {tf['version']} ({label}, {kind})", detail=detail)]


def python_supported(facts: dict) -> list[Finding]:
    tf = facts.get("tensorflow")
    py = _python_minor(facts)
    if not tf or not tf.get("installed") or not py:
        return []
    supported = _supported(tf.get("version") or tf.get("dist_version") or "")
    if not supported:
        return []
    low, high = supported
    if _minor_key(low) <= _minor_key(py) <= _minor_key(high):
        return []
    return [Finding("tensorflow.python-unsupported", WARNING,
                    f"TensorFlow {tf.get('version') or tf.get('dist_version')} supports Python {low}-{high}, "
                    f"not {py}",
                    detail="It was built and tested for other Python versions; expect import or runtime failures.",
                    hint=f"Create an environment with Python {high} for it: tbdoctor setup")]


RULES = (version, python_supported)
