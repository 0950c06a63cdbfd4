"""Runs one payload (a stdlib-only script in tbdoctor/payloads) in the target
interpreter, bounded, and reads back the object it emitted; a payload that crashes,
hangs or prints garbage raises ProbeFailed, named by the step it was in. Used by the
probes (probe.py), snapshot, verify, the facts cache and gpuinfo/cuda.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from importlib import resources

from tbdoctor import procs
from tbdoctor.target import Target

# A probe with no CPU time, page faults or I/O for this long is hung (TBDOCTOR_HANG_WINDOW overrides).
HANG_WINDOW = 10.0
_MARKER = "@@tbdoctor-result@@"
_STEP = "@@tbdoctor-step@@"
QUIET_ENV = {
    "PYTHONIOENCODING": "utf-8",
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONWARNINGS": "ignore",
    "TF_CPP_MIN_LOG_LEVEL": "3",
    "TF_ENABLE_ONEDNN_OPTS": "0",
    "GRPC_VERBOSITY": "ERROR",
}


class ProbeFailed(Exception):
    """A probe ended without a usable result; the message says how. ``step`` is the
    last step the payload announced (see payloads/_common.py ``step``); ``data``, the
    facts by key that were still gathered; ``charged``, the keys the failure was
    recorded in (the culprits), when every key has facts."""

    def __init__(self, message: str, stderr_tail: str = "", step: dict | None = None, failure: dict | None = None,
                 data: dict | None = None, charged: tuple[str, ...] = ()):
        super().__init__(message)
        self.stderr_tail = stderr_tail
        self.step = step or {}
        self.failure = failure or {}
        self.data = data or {}
        self.charged = charged


def hang_window() -> float:
    try:
        return float(os.environ.get("TBDOCTOR_HANG_WINDOW") or HANG_WINDOW)
    except ValueError:
        return HANG_WINDOW


_SIBLING = re.compile(r"^from \.(\w+) import", re.M)


def payload_source(filename: str) -> str:
    """The script the target runs for payload ``filename``: payloads/_boot.py, then the
    call that runs the payload with the sibling modules it imports (see _boot.py)."""
    files = resources.files("tbdoctor.payloads")
    read = lambda name: files.joinpath(name + ".py").read_text(encoding="utf-8")  # noqa: E731
    main = filename.removesuffix(".py")
    sources: dict[str, str] = {}
    todo = [main]
    while todo:
        name = todo.pop()
        if name not in sources:
            sources[name] = read(name)
            todo += _SIBLING.findall(sources[name])
    return read("_boot") + f"\n\nrun({sources!r}, {main!r})\n"


def emitted(stdout: str) -> list[dict]:
    """Every result object a payload printed with ``emit`` (one per rank under torchrun)."""
    found = []
    for line in stdout.splitlines():
        if line.startswith(_MARKER):
            try:
                data = json.loads(line[len(_MARKER):])
            except ValueError:
                continue
            if isinstance(data, dict):
                found.append(data)
    return found


def run_payload(target: Target, filename: str, timeout: float, context: dict | None = None,
                watch: bool = False) -> dict:
    """Run one payload in the target interpreter and return the object it emitted.
    With ``watch``, a payload that makes no progress for ``hang_window()`` s is hung."""
    env = dict(os.environ, **QUIET_ENV)
    with tempfile.TemporaryDirectory(prefix="tbdoctor-probe-") as neutral_cwd:
        result = procs.run(
            [target.python, "-X", "faulthandler", "-", json.dumps(context or {})],
            timeout=timeout, env=env, cwd=neutral_cwd, stdin_text=payload_source(filename),
            stall=hang_window() if watch else 0.0,
        )
    stderr = "\n".join(line for line in result.stderr.splitlines() if not line.startswith(_STEP))
    if result.failure():
        raise _failed(result, stderr)
    found = emitted(result.stdout)
    if found:
        return found[-1]
    raise ProbeFailed("printed no parseable result", _tail(stderr) or result.stdout[-500:])


def _tail(text: str, lines: int = 8) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def _failed(result: procs.ProcResult, stderr: str) -> ProbeFailed:
    """How a payload ended, named by the step it was in and where its Python stack was."""
    steps = []
    for line in result.stderr.splitlines():
        if line.startswith(_STEP):
            try:
                steps.append(json.loads(line[len(_STEP):]))
            except ValueError:
                continue
    last = dict(steps[-1]) if steps else {}
    if last.get("part") and last.get("facts") is None:  # the facts of the part so far
        last["facts"] = next((s["facts"] for s in reversed(steps)
                              if s.get("part") == last["part"] and s.get("facts") is not None), None)
    what, where = last.get("step"), ""
    if what:
        where = stack_location(stderr, re.split(r"[\s.]", what.replace("import ", "", 1))[0])
    if result.stalled and what:
        line = f"{what} hangs" + (f" in {where}" if where else "") + \
            f" (no CPU time or I/O for {result.stalled:.0f} s; stopped after {result.seconds:.0f} s)"
        message = "hung: " + line
    else:
        line = message = result.failure() + (f" during {what}" if what else "") + (f", in {where}" if where else "")
    reason = "hang" if result.stalled else "timeout" if result.timed_out else \
        "crashed" if result.signal_name else "other"
    failure = {"reason": reason, "line": line, "traceback": stderr.strip()[-4000:]}
    return ProbeFailed(message, _tail(stderr), step=last, failure=failure)


_FRAME = re.compile(r'^\s+File "(.+)", line (\d+) in (.+)$')


def stack_location(stderr: str, module: str) -> str:
    """Where faulthandler's dump of the stack says the code was: the innermost frame in
    ``module``'s own files, then (if elsewhere) the innermost one in an installed package,
    else the innermost of all."""
    blocks: list[list[tuple[str, str, str]]] = []
    for line in stderr.splitlines():
        if "(most recent call first)" in line:
            blocks.append([])
        elif blocks and _FRAME.match(line):
            blocks[-1].append(_FRAME.match(line).groups())

    def in_module(frame) -> bool:
        parts = re.split(r"[\\/]", frame[0])
        return module in parts or parts[-1] == module + ".py"

    frames = next((b for b in blocks if any(map(in_module, b))), blocks[0] if blocks else [])
    real = [f for f in frames if not f[0].startswith("<")]
    if not real:
        return ""
    own = next((f for f in real if in_module(f)), real[0])
    # Then the innermost frame in an installed package (another package it imports), else the innermost.
    inner = next((f for f in real if re.search(r"[\\/](site|dist)-packages[\\/]", f[0])), real[0])
    inner = inner if inner != own else real[0]
    text = lambda f: f"{f[0]}:{f[1]} ({f[2]})"  # noqa: E731
    return text(own) if inner == own else f"{text(own)}, at {text(inner)}"
