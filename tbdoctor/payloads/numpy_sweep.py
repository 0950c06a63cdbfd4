# NumPy and protobuf versions, and a bounded sweep of the installed packages that
# depend on numpy. Compiled ones are answered from their extension modules where the
# NumPy headers they were built with say it (see abi_of); the rest are imported, one
# after the other, in one child process (a crash or hang there marks only the package
# being imported; the sweep goes on in a fresh child). Stdlib only, 3.8+.
import importlib.machinery
import json
import mmap
import os
import re
import subprocess
import sys
import tempfile
import threading
import time

from importlib import metadata

from ._common import (
    canonical, classify, context, dist_integrity, dist_version, emit,
    guarded_import, headers, top_level_names,
)

# Imported by other probes (torch, tensorflow, jax, tensorboard): not swept again.
_COVERED = {"torch", "tensorflow", "tensorflow-cpu", "tensorflow-gpu", "tensorflow-intel", "tensorflow-macos",
            "tf-nightly", "tf-keras", "keras", "jax", "jaxlib", "tensorboard", "tb-nightly", "tensorboardx", "numpy"}
_MAX_IMPORTS = 60  # the dependents answered from their files are not bounded
# The module NumPy's C-API headers import to get the _ARRAY_API capsule: NumPy 2's headers
# name numpy._core first (falling back to numpy.core), NumPy 1.x's name only numpy.core.
# NumPy 2 refuses extensions built with 1.x headers (ABI version 0x1000009 != 0x2000000).
_NUMPY2_HEADERS = b"numpy._core._multiarray_umath"
_NUMPY1_HEADERS = b"numpy.core._multiarray_umath"
_CAPSULES = (b"_ARRAY_API", b"_UFUNC_API")
_RUN_MARK = "@@tbdoctor-sweep@@"
# Run by the import child: imports each module list of argv[1], saying before and after on stdout.
_CHILD = r"""
import importlib, json, os, sys, traceback, warnings
out = os.dup(1)
def say(*record):
    os.write(out, ("\n%s%s\n" % (MARK, json.dumps(record))).encode())
for i, modules in enumerate(json.loads(sys.argv[1])):
    say("start", i)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for m in modules:
                importlib.import_module(m)
    except BaseException as exc:
        say("failed", i, "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))[-3000:])
    else:
        say("ok", i)
"""


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
            found.append({"name": name, "version": meta["Version"], "modules": modules, "dist": dist})
    return sorted(found, key=lambda d: canonical(d["name"]))


def extensions(dist):
    """The extension modules (shared libraries Python imports) in ``dist``'s RECORD."""
    record = dist.read_text("RECORD") or ""
    suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES)
    return [str(dist.locate_file(p)) for p in (line.split(",", 1)[0] for line in record.splitlines())
            if p.endswith(suffixes)]


def headers_of(path):
    """Which NumPy headers an extension module was built with: 2, 1, None (it does not
    use NumPy's C API) or "unknown" (it looks the API up some other way, e.g. pybind11)."""
    try:
        with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
            if data.find(_NUMPY2_HEADERS) >= 0:
                return 2
            if data.find(_NUMPY1_HEADERS) >= 0:
                return 1
            return "unknown" if any(data.find(c) >= 0 for c in _CAPSULES) else None
    except (OSError, ValueError):  # unreadable or empty
        return "unknown"


def abi_of(item, numpy_major):
    """The sweep's answer for a compiled dependent without importing it, or None when its
    files do not decide it: under NumPy 2, an extension built with NumPy 1.x headers
    cannot load (numpy-abi), and one built with NumPy 2 headers can. Under NumPy 1 the
    C-API version an extension needs is not in these strings: it is imported."""
    if numpy_major < 2:
        return None
    built = {}
    for path in extensions(item["dist"]):
        built[path] = headers_of(path)
    if "unknown" in built.values() or not any(built.values()):
        return None  # pure Python, or no extension that NumPy's headers decide
    old = sorted(p for p, major in built.items() if major == 1)
    result = dict(public(item), method="symbols", seconds=0.0, signal=None)
    if not old:
        return dict(result, ok=True, reason=None, line=None, traceback="")
    short = os.path.basename(old[0])
    line = ("%s was compiled with the NumPy 1.x C-API headers (it imports numpy.core._multiarray_umath, not "
            "numpy._core): NumPy 2 refuses to load it" % short)
    evidence = "\n".join("%s: built with NumPy 1.x headers" % p for p in old[:20])
    return dict(result, ok=False, reason="numpy-abi", line=line, traceback=evidence)


def public(item):
    return {k: v for k, v in item.items() if k != "dist"}


def import_all(items, budget):
    """Import ``items`` one after the other in one child; a crash or a hang marks the item
    being imported and the rest go on in a fresh child. Stops starting imports when
    ``budget`` s are spent (those are 'not-run')."""
    deadline = time.time() + budget
    per_import = max(10.0, budget / 3)  # a hang leaves time for the others
    results, left = {}, list(range(len(items)))
    while left and deadline - time.time() >= 1:
        batch = [items[i] for i in left]
        done = _run_child(batch, deadline, per_import)
        for j, got in done.items():
            results[left[j]] = got
        left = [i for j, i in enumerate(left) if j not in done]
    for i in left:
        results[i] = dict(public(items[i]), ok=None, reason="not-run", method="import",
                          line="skipped: the sweep's time budget was spent")
    for i, got in results.items():
        if got.get("ok") is False:
            got["integrity"] = dist_integrity(items[i]["name"])
    return [results[i] for i in range(len(items))]


def _run_child(batch, deadline, per_import):
    """{index in batch: result} of what one child got through (the item it died on, or that
    took longer than ``per_import`` s, included)."""
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    code = "MARK = %r\n%s" % (_RUN_MARK, _CHILD)
    arg = json.dumps([item["modules"] for item in batch])
    done, started = {}, [None, time.time()]
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen([sys.executable, "-c", code, arg], stdout=subprocess.PIPE, stderr=err,
                                stdin=subprocess.DEVNULL, env=env)

        def read():
            for raw in proc.stdout:
                line = raw.decode("utf-8", "replace")
                if not line.startswith(_RUN_MARK):
                    continue
                record = json.loads(line[len(_RUN_MARK):])
                kind, i = record[0], record[1]
                now = time.time()
                if kind == "start":
                    started[:] = [i, now]
                    continue
                result = dict(public(batch[i]), method="import", signal=None, seconds=round(now - started[1], 3))
                if kind == "ok":
                    result.update(ok=True, reason=None, line=None, traceback="")
                else:
                    reason, first = classify(record[2])
                    result.update(ok=False, reason=reason, line=first, traceback=record[2])
                done[i] = result
                started[0] = None

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        timed_out = False
        while proc.poll() is None:  # one import may take at most per_import s (a hang)
            now = time.time()
            if now >= deadline or (started[0] is not None and now - started[1] > per_import):
                proc.kill()
                proc.wait()
                timed_out = True
                break
            time.sleep(0.02)
        reader.join(5)
        current = started[0]
        if current is not None and current not in done:
            result = dict(public(batch[current]), method="import", seconds=round(time.time() - started[1], 3),
                          ok=False, signal=None)
            if timed_out:
                result.update(reason="timeout", line="import did not finish within %.0f s" % (time.time() - started[1]), traceback="")
            else:
                err.seek(0)
                tail = err.read().decode("utf-8", "replace")[-3000:]
                if proc.returncode < 0:
                    result.update(reason="crashed", signal=-proc.returncode,
                                  line="the import crashed (signal %d)" % -proc.returncode, traceback=tail)
                else:
                    reason, first = classify(tail)
                    result.update(reason=reason, line=first or "the import exited (status %s)" % proc.returncode,
                                  traceback=tail)
            done[current] = result
    return done


def sweep(items, budget, numpy_major):
    """Answer each item from its extension modules where they decide it, import the rest
    (at most _MAX_IMPORTS; those left out count as not checked)."""
    answered, rest = {}, []
    for item in items:
        got = abi_of(item, numpy_major)
        if got is None:
            rest.append(item)
        else:
            if not got["ok"]:
                got["integrity"] = dist_integrity(item["name"])
            answered[item["name"]] = got
    results = list(answered.values()) + import_all(rest[:_MAX_IMPORTS], budget)
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


def numpy_major(facts):
    """NumPy's major version when it imports (else 0: every dependent is imported)."""
    match = re.match(r"(\d+)\.", facts.get("numpy_module_version") or "")
    return int(match.group(1)) if match and not facts.get("numpy_import_error") else 0


ctx = context()
facts = versions()
found = dependents() if facts["numpy"] else []
facts["dependents_total"] = len(found)
timeout = float(ctx.get("timeout") or 90)
facts["dependents"] = sweep(found, max(5.0, timeout * 0.7), numpy_major(facts))
emit(facts)
