# NumPy and protobuf versions, and a bounded, parallel import sweep of the
# installed packages that depend on numpy: each import runs in its own child
# process, so one that segfaults or hangs only marks that package.
# Stdlib only, 3.8+.
import os
import re
import subprocess
import sys
import threading
import time

from importlib import metadata

from ._common import (
    canonical, classify, context, dist_integrity, dist_version, emit,
    first_line, guarded_import, headers, top_level_names,
)

# Imported by other probes (torch, tensorflow, jax, tensorboard): not swept again.
_COVERED = {"torch", "tensorflow", "tensorflow-cpu", "tensorflow-gpu", "tensorflow-intel", "tensorflow-macos",
            "tf-nightly", "tf-keras", "keras", "jax", "jaxlib", "tensorboard", "tb-nightly", "tensorboardx", "numpy"}
_MAX_PACKAGES = 60
_WORKERS = max(2, min(4, os.cpu_count() or 2))


def needs_numpy(dist):
    for raw in dist.requires or ():
        head = re.split(r"[\s;<>=!~\[(]", raw.strip(), maxsplit=1)[0]
        if canonical(head) == "numpy" and "extra ==" not in raw.replace('"', "'") and "extra==" not in raw:
            return True
    return False


def modules_of(dist):
    return [n for n in top_level_names(dist) if not n.startswith("_") and n not in ("tests", "test")]


def dependents():
    seen, found = set(), []
    for dist in metadata.distributions():
        meta = headers(dist)
        name = meta["Name"]
        if not name or canonical(name) in seen:
            continue
        seen.add(canonical(name))
        if canonical(name) in _COVERED or not needs_numpy(dist):
            continue
        modules = modules_of(dist)
        if modules:
            found.append({"name": name, "version": meta["Version"], "modules": modules})
    return sorted(found, key=lambda d: canonical(d["name"]))


def import_one(item, timeout):
    code = "; ".join("import %s" % m for m in item["modules"])
    start = time.time()
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    result = dict(item, ok=False, reason=None, line=None, signal=None, seconds=None, traceback="")
    try:
        proc = subprocess.run([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              timeout=timeout, universal_newlines=True, errors="replace", env=env)
    except subprocess.TimeoutExpired:
        result.update(reason="timeout", line="import did not finish within %.0f s" % timeout)
    except OSError as exc:
        result.update(reason="other", line=first_line(exc))
    else:
        if proc.returncode == 0:
            result["ok"] = True
        elif proc.returncode < 0:
            result.update(reason="crashed", signal=-proc.returncode,
                          line="the import crashed (signal %d)" % -proc.returncode, traceback=proc.stderr[-3000:])
        else:
            reason, line = classify(proc.stderr)
            result.update(reason=reason, line=line, traceback=proc.stderr[-3000:])
    if not result["ok"]:
        result["integrity"] = dist_integrity(item["name"])
    result["seconds"] = round(time.time() - start, 3)
    return result


def sweep(items, budget):
    """Import ``items`` with a few workers; stop starting new imports when ``budget`` s are spent."""
    deadline = time.time() + budget
    queue = list(items)
    results = []
    lock = threading.Lock()

    def worker():
        while True:
            with lock:
                if not queue:
                    return
                item = queue.pop(0)
            left = deadline - time.time()
            if left < 1:
                got = dict(item, ok=None, reason="not-run", line="skipped: the sweep's time budget was spent")
            else:
                got = import_one(item, left)
            with lock:
                results.append(got)

    threads = [threading.Thread(target=worker) for _ in range(_WORKERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sorted(results, key=lambda r: canonical(r["name"]))


def versions():
    out = {}
    _, out["numpy"] = dist_version("numpy")
    _, out["protobuf"] = dist_version("protobuf")
    np_mod, err = guarded_import("numpy")
    out["numpy_import_error"] = err if out["numpy"] else None
    out["numpy_module_version"] = getattr(np_mod, "__version__", None)
    out["protobuf_implementation"] = None
    if out["protobuf"]:
        impl, err = guarded_import("google.protobuf.internal.api_implementation")
        out["protobuf_implementation"] = impl.Type() if impl is not None else None
        out["protobuf_import_error"] = err
    out["protobuf_env"] = os.environ.get("PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION")
    return out


ctx = context()
facts = versions()
found = dependents() if facts["numpy"] else []
facts["dependents_total"] = len(found)
timeout = float(ctx.get("timeout") or 90)
facts["dependents"] = sweep(found[:_MAX_PACKAGES], budget=max(5.0, timeout * 0.7))
emit(facts)
