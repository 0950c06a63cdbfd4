"""The readback phase: TensorBoard's own event loader (run in the target) must
find every scalar the job wrote, step for step and value for value, and the
histogram, text, graph and hparams records it claims.

Values are compared exactly after rounding to float32, the precision event
files store.
"""

from __future__ import annotations

import math
import struct
import time

from tbdoctor import payload
from tbdoctor.findings import quote_command
from tbdoctor.target import Target
from tbdoctor.verify.result import FAIL, PASS, Phase

TENSORBOARD_MISSING = "tensorboard is not installed in the target"


def f32(value) -> float:
    """``value`` as stored in an event file (float32), back as a Python float.
    Accepts the strings TensorBoard's JSON uses for non-finite values ("NaN", "Infinity")."""
    try:
        value = float(value)
        return struct.unpack("<f", struct.pack("<f", value))[0]
    except OverflowError:  # beyond float32: stored as +-inf
        return math.copysign(math.inf, value)
    except (TypeError, ValueError):
        return math.nan


def same(written: float, read: float) -> bool:
    """Equal as stored in an event file (NaN, written as NaN, reads back as NaN)."""
    a, b = f32(written), f32(read)
    return a == b or (math.isnan(a) and math.isnan(b))


def install_fix(target: Target, requirement: str = "tensorboard") -> str:
    return quote_command([target.python, "-m", "pip", "install", requirement])


def read(target: Target, run_dir: str, timeout: float) -> tuple[dict | None, str]:
    """(what the loader found, '') or (None, why it could not read)."""
    try:
        data = payload.run_payload(target, "read_events.py", timeout, {"run_dir": run_dir})
    except payload.ProbeFailed as exc:
        tail = exc.stderr_tail.strip().splitlines()[-1:] if exc.stderr_tail else []
        return None, f"the event reader {exc}" + (f": {tail[0]}" if tail else "")
    if "error" in data:
        if data.get("missing"):
            return None, TENSORBOARD_MISSING
        return None, f"tensorboard cannot be imported: {data['error']}"
    return data, ""


def compare(written: dict, found: dict) -> list[str]:
    """Every difference between what the job wrote and what was read back."""
    problems = []
    runs = found.get("runs", {})
    for run, expect in sorted(written.items()):
        got = runs.get(run)
        if got is None:
            problems.append(f"run {run}: no event file read back")
            continue
        for tag, points in expect.get("scalars", {}).items():
            read_points = {step: value for step, value in got["scalars"].get(tag, [])}
            missing = [s for s, _ in points if s not in read_points]
            wrong = [(s, v, read_points[s]) for s, v in points if s in read_points and not same(v, read_points[s])]
            if missing:
                problems.append(f"run {run}, scalar {tag}: {len(missing)} of {len(points)} steps missing "
                                f"(first: step {missing[0]})")
            if wrong:
                s, v, r = wrong[0]
                problems.append(f"run {run}, scalar {tag}: {len(wrong)} values differ (step {s}: wrote {v!r}, read {r!r})")
        for kind in ("histograms", "text"):
            absent = sorted(set(expect.get(kind, [])) - set(got.get(kind, [])))
            if absent:
                problems.append(f"run {run}: {kind} {', '.join(absent)} not found")
        for kind in ("graph", "hparams"):
            if expect.get(kind) and not got.get(kind):
                problems.append(f"run {run}: the {kind} record is missing")
    return problems


def phase(target: Target, run_dir: str, written: dict, timeout: float) -> tuple[Phase, dict | None]:
    """Run the reader and judge; returns the phase and what was read (for the curve)."""
    start = time.monotonic()
    found, error = read(target, run_dir, timeout)
    seconds = time.monotonic() - start
    if found is None:
        fix = (install_fix(target) if error == TENSORBOARD_MISSING
               else f"run `tbdoctor check --python {target.python}` for the cause")
        reason = (error + ": cannot read the event files back (training itself was verified)"
                  if error == TENSORBOARD_MISSING else error)
        return Phase("readback", FAIL, seconds, reason, fix), None
    damaged = [f for f in found.get("files", []) if f.get("error")]
    if damaged:
        f = damaged[0]
        return Phase("readback", FAIL, seconds,
                     f"event file {f['path']} is truncated or corrupt after {f['events']} events: {f['error']}",
                     "the file was damaged after it was written (disk full, a crash, another writer): "
                     "delete it and rerun"), found
    problems = compare(written, found)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        return Phase("readback", FAIL, seconds, problems[0] + more,
                     "the event files do not hold what was written: check the disk and rerun"), found
    points = sum(len(p) for run in written.values() for p in run.get("scalars", {}).values())
    files = len(found.get("files", []))
    return Phase("readback", PASS, seconds, f"{points} scalar points in {len(written)} runs and {files} files "
                 f"match exactly (tensorboard {found.get('tensorboard')})"), found
