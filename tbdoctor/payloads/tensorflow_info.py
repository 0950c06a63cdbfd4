# TensorFlow: version, build (CUDA, cuDNN), the GPUs it sees. Stdlib only, 3.8+.
# Imports tensorflow only when a distribution provides it.
import importlib.util

from ._common import begin, dist_integrity, dist_version, emit, failure, first_line, guarded_import, step

_DISTS = ("tensorflow", "tensorflow-cpu", "tensorflow-gpu", "tf-nightly", "tf-nightly-cpu", "tensorflow-intel",
          "tensorflow-macos", "tensorflow-cpu-aws", "intel-tensorflow")


def probe():
    name, version = dist_version(*_DISTS)
    if name is None and importlib.util.find_spec("tensorflow") is None:
        return {"installed": False}
    out = {"installed": True, "distribution": name, "dist_version": version, "import_ok": False,
           "import_error": None, "version": None, "build": None, "gpus": None, "gpu_error": None}
    begin("tensorflow", out)
    tf, err = guarded_import("tensorflow", "import_error")
    if tf is None:
        out["import_error"] = err
        out["integrity"] = dist_integrity(*_DISTS)
        return out
    out["import_ok"] = True
    out["version"] = str(getattr(tf, "__version__", None))
    try:
        info = dict(tf.sysconfig.get_build_info())
        out["build"] = {k: info.get(k) for k in ("cuda_version", "cudnn_version", "is_cuda_build", "is_rocm_build",
                                                 "cuda_compute_capabilities")}
    except Exception as exc:
        out["build"] = {"error": first_line(exc)}
    step("tf.config.list_physical_devices('GPU')")  # a crash here stays the probe's (probe.tensorflow)
    try:
        out["gpus"] = [d.name for d in tf.config.list_physical_devices("GPU")]
    except Exception as exc:
        out["gpu_error"] = failure(exc)
    return out


emit(probe())
