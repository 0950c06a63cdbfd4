"""``verify(target, options)``: the phases in order, each fed by the one before.

import, data, train, log (the job, per framework) -> readback (TensorBoard's
loader) -> server (TensorBoard's HTTP API) -> distributed (torchrun, when
asked). A phase that cannot run because an earlier one failed is skipped and
says why; the job still trains when only logging is impossible.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from tbdoctor.target import Target
from tbdoctor.verify import job, readback, server as server_mod
from tbdoctor.verify.result import FAIL, PASS, SKIPPED, Outcome, Phase


@dataclass
class Options:
    logdir: str | None = None  # the caller (commands/verify.py) chooses one when the user did not
    keep: bool = False  # --keep: keep the default logdir
    device: str | None = None
    frameworks: tuple[str, ...] = ("torch",)
    server: bool = True
    serve: bool = False
    port: int | None = None
    server_timeout: float = 60.0
    timeout: float = 600.0
    lr: float | None = None
    steps: int | None = None
    seed: int | None = None
    distributed: bool = False
    nproc: int = 2


def run_name() -> str:
    return f"verify-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"


def verify(target: Target, options: Options) -> tuple[Outcome, server_mod.Server | None]:
    """Run every phase; returns the outcome and, with ``--serve`` on success, the live server."""
    logdir = os.path.abspath(options.logdir)
    run_dir = os.path.join(logdir, run_name())
    outcome = Outcome(target.to_dict(), logdir, run_dir)
    values = {"device": options.device, "lr": options.lr, "steps": options.steps, "seed": options.seed}
    distributed_phase = None
    for framework in options.frameworks:
        if framework == "torch" and options.distributed:
            ctx = job.context(run_dir, values, distributed=True, backend="auto")
            run, distributed_phase, outcome.distributed = job.run_distributed(target, ctx, options.nproc, options.timeout)
        else:
            run = job.run_single(target, framework, job.context(run_dir, values), options.timeout)
        outcome.jobs.append(run)

    written = {run: rec for j in outcome.jobs for run, rec in j.written.items()}
    logged = any(p.name == "log" and p.status == PASS for p in outcome.all_phases())
    found = None
    if written and logged:
        back, found = readback.phase(target, run_dir, written, options.timeout)
    else:
        back = Phase("readback", SKIPPED, detail="nothing to read: no job logged its run")
    outcome.phases.append(back)
    outcome.curve = _curve(found, outcome)

    live = None
    if not options.server:
        outcome.phases.append(Phase("server", SKIPPED, detail="--no-server"))
    elif back.status == FAIL and back.detail.startswith(readback.TENSORBOARD_MISSING):
        outcome.phases.append(Phase("server", FAIL, 0.0, "tensorboard is not installed in the target: "
                                    "there is no TensorBoard server to start", back.fix))
    elif back.status != PASS:
        outcome.phases.append(Phase("server", SKIPPED, detail="the readback phase did not pass"))
    else:
        live = server_mod.Server(target, run_dir, options.port)
        keep = False
        try:
            phase, outcome.runs = server_mod.check(live, written, options.server_timeout)
            outcome.phases.append(phase)
            keep = options.serve and phase.status == PASS
            if keep:
                outcome.url = live.url
        finally:
            if not keep:
                live.stop()
                live = None
    if distributed_phase is not None:
        outcome.phases.append(distributed_phase)
    return outcome, live


def _curve(found: dict | None, outcome: Outcome) -> list[tuple[int, float]]:
    """The loss of the first job's main run, as TensorBoard's loader read it."""
    if not found or not outcome.jobs:
        return []
    scalars = (found.get("runs", {}).get(outcome.jobs[0].framework) or {}).get("scalars", {})
    return sorted((int(step), float(value)) for step, value in scalars.get("loss", []))
