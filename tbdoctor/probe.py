"""The probe registry and engine: runs every probe in parallel, each bounded, and builds Facts.

A probe is either a payload (a stdlib-only script run by the target
interpreter) or a host function (run in tbdoctor's own process, for what does
not depend on the target: nvidia-smi, NVML, nvcc). Whatever a probe does, the
engine records how it ended in ``facts["probes"][name]``; a probe that
crashes, hangs or prints garbage leaves ``facts[name] = None`` and never stops
the others. This module owns collection and nothing else: no rules, no output; payload.py
runs one payload.
"""

from __future__ import annotations

import dataclasses
import datetime
import importlib
import os
import sys
import threading
import time
from dataclasses import dataclass
from typing import Callable

from tbdoctor import __version__, facts as facts_mod, procs
from tbdoctor.findings import SECTIONS
from tbdoctor.payload import QUIET_ENV, ProbeFailed, run_payload
from tbdoctor.target import Target

DEFAULT_TIMEOUT = 90.0  # a cold `import tensorflow` on a slow disk takes tens of seconds
# Environment variables that change what the probes see: the python probe records
# them as facts, and the facts cache is invalidated when any of them changes.
# TensorFlow's are named one by one: a bare "TF_" also matches Terraform's (TF_CLI_CONFIG_FILE, TF_VAR_*).
TF_VARIABLES = ("TF_CPP_", "TF_ENABLE_", "TF_GPU_", "TF_XLA_", "TF_FORCE_", "TF_CUDNN_", "TF_CUDA_",
                "TF_DETERMINISTIC_OPS", "TF_NUM_INTEROP_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_USE_LEGACY_KERAS",
                "TF_CONFIG", "TF_USE_MODULAR_FILESYSTEM")
ENV_PREFIXES = ("PYTHON", "PIP_", "CUDA", "NVIDIA_", "LD_LIBRARY_PATH", "DYLD_LIBRARY_PATH", "VIRTUAL_ENV",
                "CONDA", "UV_", "PYENV", *TF_VARIABLES, "TORCH", "PYTORCH", "XLA_", "HF_", "HIP_", "ROCM",
                "TBDOCTOR_", "PATH")


@dataclass(frozen=True)
class Probe:
    name: str  # key of its data in facts
    sections: tuple[str, ...]  # report sections whose rules read it (for --only); the first owns it
    payload: str = ""  # file in tbdoctor/payloads run by the target
    host: str = ""  # "module:function" run here, called with a HostContext
    heavy: bool = False  # imports a framework; skipped by --quick
    provides: tuple[str, ...] = ()  # facts keys of a shared-process payload's result (default: name)
    watch: bool = True  # stopped when it makes no progress for HANG_WINDOW (see procs.run)
    narrow: bool = False  # its parts (provides) are sections: --only runs those asked for


@dataclass(frozen=True)
class HostContext:
    """What a host probe may use: the target and a bounded subprocess runner."""

    target: Target
    timeout: float

    def run(self, argv: list[str], timeout: float | None = None) -> procs.ProcResult:
        return procs.run(argv, timeout=min(timeout or self.timeout, self.timeout))


# The one ordered registry of probes.
PROBES: tuple[Probe, ...] = (
    # The interpreter and its distributions, in one process. The framework sections read the
    # packages too: known-bad pairs, and RECORD checks of the stack's files.
    Probe("python", ("python", "pip", "torch", "tensorboardx", "tensorboard", "tensorflow", "jax", "numpy"),
          payload="python_packages.py", provides=("python", "packages")),
    Probe("gpu", ("gpu",), host="tbdoctor.gpuinfo.gpu:probe"),
    Probe("cuda", ("cuda",), host="tbdoctor.gpuinfo.cuda:probe"),
    # Every report needs it (bug reports, and redaction of user, home and host names).
    Probe("system", ("tbdoctor", *SECTIONS), host="tbdoctor.system:probe"),
    Probe("torch", ("torch", "tensorboardx", "tensorboard"), payload="torch_tensorboard.py", heavy=True,
          provides=("torch", "tensorboardx", "tensorboard"), narrow=True),
    Probe("tensorflow", ("tensorflow",), payload="tensorflow_info.py", heavy=True),
    Probe("jax", ("jax",), payload="jax_info.py", heavy=True),
    # Its sweep bounds each child import itself, and waits on them without progress of its own.
    Probe("numpy", ("numpy",), payload="numpy_sweep.py", heavy=True, watch=False),
)




def _run_one(probe: Probe, target: Target, timeout: float, context: dict) -> dict:
    if probe.payload:
        return _run_parts(probe, target, timeout, context)
    module, _, func = probe.host.partition(":")
    return {probe.name: getattr(importlib.import_module(module), func)(HostContext(target, timeout))}


def _charge(exc: ProbeFailed, parts: tuple[str, ...]) -> dict | None:
    """The facts of the part a failed payload was working on, with the failure recorded in
    the field its step named; None when the step does not say."""
    step = exc.step
    if step.get("part") not in parts or not step.get("key") or not isinstance(step.get("facts"), dict):
        return None
    return dict(step["facts"], **{step["key"]: exc.failure})


def _run_parts(probe: Probe, target: Target, timeout: float, context: dict) -> dict:
    """Run a payload probe. If it crashes or hangs, the failure is charged to the part
    (facts key) it was working on, and a payload gathering several parts (torch and
    tensorboardX) is run again for each other part alone, so those keep their facts.
    Raises ProbeFailed with what was still gathered."""
    start = time.monotonic()
    parts = probe.provides or (probe.name,)
    try:
        data = run_payload(target, probe.payload, timeout, dict(context, only=list(parts)) if probe.provides else context,
                           watch=probe.watch)
        return data if probe.provides else {probe.name: data}
    except ProbeFailed as exc:
        first = exc
    got, culprits, unexplained = {}, [], []
    charged = _charge(first, parts)
    if charged is not None:
        got[first.step["part"]] = charged
        culprits.append(first.step["part"])
    else:
        unexplained.append(first)
    left = timeout - (time.monotonic() - start)
    if len(parts) > 1 and first.step and left > 5:  # it got as far as the payload's own steps
        def alone(part: str) -> None:
            try:
                got[part] = run_payload(target, probe.payload, left, dict(context, only=[part]),
                                        watch=probe.watch).get(part)
            except ProbeFailed as exc:
                again = _charge(exc, (part,))
                if again is not None:
                    got[part] = again
                    culprits.append(part)
                else:
                    unexplained.append(exc)
        threads = [threading.Thread(target=alone, args=(p,), daemon=True) for p in parts if p not in got]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    shown = unexplained[-1] if unexplained else first  # what the probe.<name> finding must say
    complete = all(p in got for p in parts)
    raise ProbeFailed(str(shown), shown.stderr_tail, shown.step, shown.failure, got,
                      charged=tuple(culprits) if complete else ())


def _narrowed(probe: Probe, sections: list[str] | None) -> Probe:
    """A shared-process probe whose parts are sections (``narrow``) gathering only those asked for."""
    parts = tuple(k for k in probe.provides if not sections or k in sections)
    if not probe.narrow or not parts or parts == probe.provides:
        return probe
    return dataclasses.replace(probe, provides=parts, sections=tuple(s for s in probe.sections if s in sections))


def select(sections: list[str] | None, quick: bool) -> tuple[tuple[Probe, ...], tuple[Probe, ...]]:
    """(probes to run, probes skipped by --quick) for these report sections."""
    wanted = [_narrowed(p, sections) for p in PROBES if not sections or set(p.sections) & set(sections)]
    return (tuple(p for p in wanted if not (quick and p.heavy)),
            tuple(p for p in wanted if quick and p.heavy))


def collect(target: Target, probes: tuple[Probe, ...], timeout: float = DEFAULT_TIMEOUT,
            on_done: Callable[[str], None] | None = None, skipped: tuple[Probe, ...] = (),
            integrity: str = "files") -> dict:
    """Run ``probes`` in parallel; return the redacted facts snapshot.

    Returns within about ``timeout`` seconds whatever the probes do: payload
    children are killed with their process group, and a host probe still
    running at the deadline is abandoned (its thread is a daemon). With
    ``integrity`` "hashes" the stack's installed files are hashed and compared with RECORD
    (with "files" each is looked for, with "folders" each folder).
    """
    # The user's own values of the variables QUIET_ENV overrides (None: unset), so the
    # python probe records the user's environment, not tbdoctor's settings for its probes.
    context = {"cwd": os.getcwd(), "timeout": timeout, "env_prefixes": ENV_PREFIXES,
               "user_env": {k: os.environ.get(k) for k in QUIET_ENV}, "integrity": integrity}
    results: dict[str, dict] = {}
    lock = threading.Lock()

    def worker(probe: Probe) -> None:
        start = time.monotonic()
        meta: dict = {"status": "ok", "section": probe.sections[0]}
        data = None
        try:
            data = _run_one(probe, target, timeout, context)
        except ProbeFailed as exc:
            meta.update(status="failed", error=str(exc), stderr_tail=exc.stderr_tail)
            data = exc.data or None
            if exc.charged:  # reported on the packages themselves (<section>.import-failed)
                meta["charged"] = list(exc.charged)
        except Exception as exc:  # a bug in a host probe must not take the run down
            meta.update(status="failed", error=f"{type(exc).__name__}: {exc}", stderr_tail="")
        meta["seconds"] = round(time.monotonic() - start, 3)
        with lock:
            results[probe.name] = {"meta": meta, "data": data}
        if on_done:
            on_done(probe.name)

    threads = [threading.Thread(target=worker, args=(p,), daemon=True, name=f"probe-{p.name}") for p in probes]
    for _, t in sorted(zip(probes, threads), key=lambda pair: not pair[0].heavy):  # framework imports take longest
        t.start()
    deadline = time.monotonic() + timeout + 10  # the children's own kill takes a moment
    try:
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))
    except BaseException:  # Ctrl-C: leave no probe running
        procs.kill_all()
        raise

    snapshot: dict = {
        "schema": facts_mod.SCHEMA,
        "tbdoctor": __version__,
        "collected_at": datetime.date.today().isoformat(),
        "host_platform": sys.platform,
        "target": target.to_dict(),
        "probes": {},
    }
    with lock:
        for probe in probes:
            got = results.get(probe.name)
            if got is None:
                got = {"meta": {"status": "failed", "section": probe.sections[0], "seconds": round(timeout, 3),
                                "error": f"timed out after {timeout:.0f} s", "stderr_tail": ""}, "data": None}
            snapshot["probes"][probe.name] = got["meta"]
            data = got["data"]
            for key in probe.provides or (probe.name,):  # payloads: one process, several facts keys
                snapshot[key] = data.get(key) if isinstance(data, dict) else None
    for probe in skipped:
        snapshot["probes"][probe.name] = {"status": "skipped", "section": probe.sections[0], "seconds": 0.0,
                                          "error": "skipped by --quick (it imports a framework)"}
        for key in probe.provides or (probe.name,):
            snapshot[key] = None
    return facts_mod.redact(snapshot)
