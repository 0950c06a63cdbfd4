"""``verify(target, options)``: the phases in order, each fed by the one before.

import, data, train, log (the job, per framework) -> readback (TensorBoard's
loader) -> server (TensorBoard's HTTP API) -> browser (the page in a headless
Chromium) -> distributed (torchrun, when asked). Each phase is announced to a
listener as it starts and ends (the live display). A phase that cannot run because an earlier one failed is skipped and
says why; the job still trains when only logging is impossible.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from tbdoctor.target import Target
from tbdoctor.verify import job, kinds as kinds_mod, multinode, readback, server as server_mod
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
    nodes: multinode.Nodes | None = None  # --nnodes ... or the launcher's environment
    browser: bool = True


def run_name() -> str:
    return f"verify-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"


def _timed(listen: job.Listener, name: str, work) -> Phase:
    """Announce phase ``name``, run ``work()`` (returns its Phase), announce the result."""
    listen("start", {"name": name, "framework": ""})
    phase = work()
    listen("done", {"phase": phase})
    return phase


def _announce(listen: job.Listener, phases: list[Phase]) -> None:
    for phase in phases:  # the listener ignores what the job already reported live
        listen("done", {"phase": phase})


def verify(target: Target, options: Options,
           listen: job.Listener = job.quiet) -> tuple[Outcome, server_mod.Server | None]:
    """Run every phase; returns the outcome and, with ``--serve`` on success, the live server."""
    logdir = os.path.abspath(options.logdir)
    run_dir = os.path.join(logdir, run_name())
    outcome = Outcome(target.to_dict(), logdir, run_dir)
    values = {"device": options.device, "lr": options.lr, "steps": options.steps, "seed": options.seed}
    distributed_phase = None
    for framework in options.frameworks:
        if framework == "torch" and options.distributed:
            ctx = job.context(run_dir, values, distributed=True, backend="auto")
            if options.nodes is not None:
                ctx["collective_timeout"] = options.nodes.timeout
            run, distributed_phase, outcome.distributed = job.run_distributed(
                target, ctx, options.nproc, options.timeout, listen, options.nodes)
        else:
            run = job.run_single(target, framework, job.context(run_dir, values), options.timeout, listen)
        _announce(listen, run.phases)
        outcome.jobs.append(run)

    written = {run: rec for j in outcome.jobs for run, rec in j.written.items()}
    outcome.kinds = kinds_mod.from_jobs(outcome.jobs)
    logged = any(p.name == "log" and p.status == PASS for p in outcome.all_phases())
    found = None
    if written and logged:
        def read_back() -> Phase:
            nonlocal found
            phase, found = readback.phase(target, run_dir, written, options.timeout)
            return phase
        back = _timed(listen, "readback", read_back)
    else:
        why = ("nothing to read here: the node of global rank 0 writes and reads back the event files"
               if (outcome.distributed or {}).get("nodes") else "nothing to read: no job logged its run")
        back = Phase("readback", SKIPPED, detail=why)
        _announce(listen, [back])
    outcome.phases.append(back)
    outcome.curve = _curve(found, outcome)
    kinds_mod.phase_stage(outcome.kinds, "read_back", back.status)
    if back.status == PASS and found:
        kinds_mod.judge(outcome.kinds, "read_back", kinds_mod.read_back(written, found),
                        "the event files do not hold what was written: check the disk and rerun", written)

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
            def serve() -> Phase:
                phase, outcome.runs = server_mod.check(live, written, options.server_timeout)
                return phase
            phase = _timed(listen, "server", serve)
            outcome.phases.append(phase)
            kinds_mod.phase_stage(outcome.kinds, "served", phase.status)
            if phase.status == PASS:
                _serve_kinds(live, written, outcome, options.server_timeout)
                browser = _browser(listen, options, live.url, written, run_dir, outcome)
                kinds_mod.phase_stage(outcome.kinds, "shown", browser.status)
                outcome.phases.append(browser)
            keep = options.serve and phase.status == PASS
            if keep:
                outcome.url = live.url
        finally:
            if not keep:
                live.stop()
                live = None
    if outcome.phases[-1].name == "server":
        why = "--no-server" if not options.server else "the server phase did not pass"
        outcome.phases.append(Phase("browser", SKIPPED, detail=why))
    _announce(listen, [p for p in outcome.phases if p.name in ("server", "browser")])
    if distributed_phase is not None:
        _announce(listen, [distributed_phase])
        outcome.phases.append(distributed_phase)
    return outcome, live


KIND_GRACE = 5.0  # s a plugin may lag behind the scalars TensorBoard already serves from the same files


def _serve_kinds(live: server_mod.Server, written: dict, outcome: Outcome, wait: float) -> None:
    """Ask each plugin for the kinds that read back (the scalars are the server phase's)."""
    ready = [k for k, r in outcome.kinds.items() if k != "scalars" and r.read_back == PASS]
    problems = server_mod.check_kinds(live, written, ready, min(wait, KIND_GRACE))
    kinds_mod.judge({k: outcome.kinds[k] for k in ready}, "served", {k: p for k, p in problems.items() if p},
                    f"open {live.url} and look at that dashboard; check the tensorboard version's plugins", written)


def _browser(listen: job.Listener, options: Options, url: str, written: dict, run_dir: str,
             outcome: Outcome) -> Phase:
    """The browser phase: skipped on purpose, skipped without a browser, or run."""
    if not options.browser:
        return Phase("browser", SKIPPED, detail="--no-browser")
    from tbdoctor.verify import browser

    shown: dict[str, str] = {}

    def look() -> Phase:
        phase, outcome.screenshot = browser.phase(url, written, run_dir, options.server_timeout, shown)
        return phase
    phase = _timed(listen, "browser", look)
    for kind, problem in shown.items():
        result = outcome.kinds.get(kind)
        if result is not None and result.last() == PASS:
            kinds_mod.judge({kind: result}, "shown", {kind: problem} if problem else {},
                            f"open {url}#{kind} yourself", written)
    return phase


def _curve(found: dict | None, outcome: Outcome) -> list[tuple[int, float]]:
    """The loss of the first job's main run, as TensorBoard's loader read it."""
    if not found or not outcome.jobs:
        return []
    scalars = (found.get("runs", {}).get(outcome.jobs[0].framework) or {}).get("scalars", {})
    return sorted((int(step), float(value)) for step, value in scalars.get("loss", []))
