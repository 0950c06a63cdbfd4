# PyTorch, tensorboardX and TensorBoard, in one process (they share numpy, protobuf and
# TensorBoard's modules: a process each imported them three times).
# Stdlib only, 3.8+. Every import is guarded; a failure is recorded, classified.
import os
import tempfile
import warnings

from ._common import (
    begin, context, dist_integrity, dist_version, emit, failure,
    first_line, guarded_import, step, tensorboard_without_tensorflow,
)
from .tensorboard_info import probe as probe_tensorboard


def probe_tensorboardx(numpy):
    name, version = dist_version("tensorboardX", "tensorboardx")
    if name is None:
        return {"installed": False}
    out = {"installed": True, "version": version, "import_ok": False, "import_error": None,
           "writer_ok": None, "writer_error": None, "event_bytes": None}
    begin("tensorboardx", out)
    tbx, err = guarded_import("tensorboardX", "import_error")
    if tbx is None:
        out["import_error"] = err
        out["integrity"] = dist_integrity(name)
        return out
    out["import_ok"] = True
    out["module_version"] = getattr(tbx, "__version__", None)
    step("tensorboardX.SummaryWriter.add_scalar", "writer_error", dict(out, writer_ok=False))
    with tempfile.TemporaryDirectory(prefix="tbdoctor-tbx-") as logdir:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                writer = tbx.SummaryWriter(logdir)
                writer.add_scalar("tbdoctor/float", 1.0, 0)
                if numpy is not None:  # a 1-element array: what a tensor's .numpy() gives
                    writer.add_scalar("tbdoctor/array", numpy.array([2.0]), 1)
                writer.close()
            sizes = [os.path.getsize(os.path.join(root, f)) for root, _, files in os.walk(logdir)
                     for f in files if f.startswith("events.out.tfevents")]
            out["event_bytes"] = sum(sizes)
            out["writer_ok"] = bool(sizes) and sum(sizes) > 40  # more than the file_version header
            if not out["writer_ok"]:
                out["writer_error"] = {"reason": "other", "line": "no scalar reached an event file in %s" % logdir,
                                       "traceback": ""}
        except Exception as exc:
            out["writer_ok"] = False
            out["writer_error"] = failure(exc)
    return out


def cuda_facts(torch, out):
    cuda = torch.cuda
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out["cuda_available"] = bool(cuda.is_available())
    messages = [str(w.message) for w in caught if "CUDA" in str(w.message)]
    if not out["cuda_available"] and (out["cuda"] or out["hip"]):
        try:
            cuda.init()
        except Exception as exc:
            messages.append(first_line(exc))
        out["cuda_error"] = messages[0] if messages else None
    try:
        flags = torch._C._cuda_getArchFlags() if out["cuda"] or out["hip"] else None
        out["arch_list"] = flags.split() if flags else []
    except Exception:
        out["arch_list"] = list(cuda.get_arch_list()) if out["cuda_available"] else []
    if out["cuda_available"]:
        out["device_count"] = cuda.device_count()
        for i in range(out["device_count"]):
            major, minor = cuda.get_device_capability(i)
            out["devices"].append({"name": cuda.get_device_name(i), "capability": "%d.%d" % (major, minor)})
        try:
            nccl = cuda.nccl.version()
            out["nccl"] = ".".join(map(str, nccl)) if isinstance(nccl, tuple) else str(nccl)
        except Exception:
            out["nccl"] = None
    else:
        out["device_count"] = 0


def probe_torch():
    name, version = dist_version("torch")
    if name is None:
        return {"installed": False}
    out = {"installed": True, "dist_version": version, "import_ok": False, "import_error": None,
           "version": None, "cuda": None, "hip": None, "cudnn": None, "cuda_available": None,
           "cuda_error": None, "device_count": None, "devices": [], "arch_list": [], "nccl": None,
           "mps_available": None, "utils_tensorboard_ok": None, "utils_tensorboard_error": None}
    begin("torch", out)
    torch, err = guarded_import("torch", "import_error")
    if torch is None:
        out["import_error"] = err
        out["integrity"] = dist_integrity("torch")
        return out
    out["import_ok"] = True
    out["version"] = str(getattr(torch, "__version__", None) or version)
    out["cuda"] = getattr(getattr(torch, "version", None), "cuda", None)
    out["hip"] = getattr(getattr(torch, "version", None), "hip", None)
    try:
        out["cudnn"] = torch.backends.cudnn.version() if out["cuda"] else None
    except Exception:
        out["cudnn"] = None
    step("torch.cuda")  # a crash here stays the probe's (probe.torch), named with this step
    try:
        cuda_facts(torch, out)
    except Exception as exc:
        out["cuda_error"] = first_line(exc)
    try:
        out["mps_available"] = bool(torch.backends.mps.is_available())
    except Exception:
        out["mps_available"] = None
    out["utils_tensorboard_ok"] = False
    utils, err = guarded_import("torch.utils.tensorboard", "utils_tensorboard_error", out)
    out["utils_tensorboard_ok"] = utils is not None
    out["utils_tensorboard_error"] = err
    return out


def guarded(probe, *args):
    """A probe's facts; a package too broken to describe counts as failing to import."""
    try:
        return probe(*args)
    except Exception as exc:
        return {"installed": True, "import_ok": False, "import_error": failure(exc)}


# Parts (facts keys) to gather; tbdoctor asks for one at a time when a run of all crashed or hung.
ctx = context()
parts = ctx.get("only") or ("tensorboardx", "torch", "tensorboard")
stubbed = tensorboard_without_tensorflow()
result = {}
if "tensorboardx" in parts:
    numpy_module, _numpy_error = guarded_import("numpy")
    result["tensorboardx"] = guarded(probe_tensorboardx, numpy_module)
if "torch" in parts:
    result["torch"] = guarded(probe_torch)
    if result["torch"].get("import_ok"):
        result["torch"]["tensorflow_stubbed"] = stubbed
if "tensorboard" in parts:
    result["tensorboard"] = guarded(probe_tensorboard, ctx)
emit(result)
