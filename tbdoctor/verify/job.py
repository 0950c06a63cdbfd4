"""Runs the training job payloads in the target interpreter, alone or under torchrun.

The job reports its own phases (import, data, train, log); when the process
itself dies (a signal, a timeout) the phase it had announced last fails with
what happened. Under torchrun every rank reports; the ``distributed`` phase
checks that all of them finished and agree.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from typing import Callable

from tbdoctor import payload, procs
from tbdoctor.findings import quote_command
from tbdoctor.target import Target
from tbdoctor.verify import multinode
from tbdoctor.verify.result import FAIL, PASS, REFERENCE, SKIPPED, JobRun, Phase

PAYLOADS = {"torch": "train_torch.py", "tf": "train_tf.py"}
JOB_PHASES = ("import", "data", "train", "log")
_PHASE_MARK = "@@tbdoctor-phase@@"  # printed by payloads/_job.py
_DONE_MARK = "@@tbdoctor-phase-done@@"
_PROGRESS_MARK = "@@tbdoctor-progress@@"
Listener = Callable[[str, dict], None]  # ("start", {name, framework}) | ("progress", {...}) | ("done", {phase})


def quiet(_event: str, _data: dict) -> None:
    """The listener when nobody watches."""


def line_reader(framework: str, listen: Listener) -> Callable[[str], None]:
    """Turns the job's marks, line by line as printed, into listener events."""
    def read(line: str) -> None:
        line = line.strip()
        if line.startswith(_PHASE_MARK):
            listen("start", {"name": line[len(_PHASE_MARK):].strip(), "framework": framework})
        elif line.startswith(_PROGRESS_MARK):
            try:
                listen("progress", dict(json.loads(line[len(_PROGRESS_MARK):]), framework=framework))
            except (ValueError, TypeError):
                pass
        elif line.startswith(_DONE_MARK):
            found, _current = progress(line)
            for phase in found:
                phase.framework = framework
                listen("done", {"phase": phase})
    return read


def context(run_dir: str, options: dict, distributed: bool = False, backend: str = "auto") -> dict:
    ctx = dict(REFERENCE, run_dir=run_dir, device=options.get("device") or "auto")
    for key in ("lr", "steps", "seed"):
        if options.get(key) is not None:
            ctx[key] = options[key]
    if distributed:
        ctx.update(distributed=True, backend=backend)
    return ctx


def _env() -> dict:
    return dict(os.environ, **payload.QUIET_ENV)


def progress(stdout: str) -> tuple[list[Phase], str]:
    """From the marks a job printed: the phases it finished, and the one it was in."""
    finished, current = {}, "import"
    for line in stdout.splitlines():
        if line.startswith(_PHASE_MARK):
            current = line[len(_PHASE_MARK):].strip()
        elif line.startswith(_DONE_MARK):
            try:
                data = json.loads(line[len(_DONE_MARK):])
                finished[data["name"]] = data
            except (ValueError, KeyError, TypeError):
                continue
    phases = [Phase(p["name"], p.get("status", PASS), p.get("seconds", 0.0), p.get("detail", ""), p.get("fix", ""))
              for name, p in finished.items() if name in JOB_PHASES]
    return phases, current if current in JOB_PHASES else "import"


def _died(framework: str, proc: procs.ProcResult, what: str) -> JobRun:
    """The job process ended without a report: keep the phases it finished and
    fail the one it was in with what happened (signal, timeout, exit status)."""
    phases, current = progress(proc.stdout)
    phases = [p for p in phases if p.name != current]
    tail = proc.stderr_tail(1)
    reason = f"{what} {proc.failure() or 'printed no result'} during the {current} phase" + (f": {tail}" if tail else "")
    fix = ("raise --timeout" if proc.timed_out
           else "run `tbdoctor check` on this interpreter; rerun with -v to see the job's output")
    phases.append(Phase(current, FAIL, proc.seconds, reason, fix))
    for phase in phases:
        phase.framework = framework
    run = JobRun(framework, phases)
    output = [line for line in (proc.stdout + "\n" + proc.stderr).splitlines()
              if line.strip() and not line.startswith("@@tbdoctor")]
    if output:
        run.notes.append("job output (end):\n" + "\n".join(output[-20:]))
    return run


def from_report(data: dict) -> JobRun:
    framework = data.get("framework", "torch")
    phases = [Phase(p["name"], p["status"], p.get("seconds", 0.0), p.get("detail", ""), p.get("fix", ""), framework)
              for p in data.get("phases", [])]
    return JobRun(framework, phases, device=data.get("device", ""), params=data.get("params"),
                  final_loss=data.get("final_loss"), steps=data.get("steps", 0),
                  versions=data.get("versions", {}), written=data.get("written", {}),
                  gpu=data.get("gpu"), notes=list(data.get("notes", [])),
                  kind_errors=dict(data.get("kind_errors") or {}))


def job_source(framework: str) -> str:
    """The framework's job with _job.py and _common.py, as one script the target runs."""
    return payload.payload_source(PAYLOADS[framework])


def run_single(target: Target, framework: str, ctx: dict, timeout: float, listen: Listener = quiet) -> JobRun:
    with tempfile.TemporaryDirectory(prefix="tbdoctor-verify-") as cwd:
        proc = procs.run([target.python, "-", json.dumps(ctx)], timeout=timeout, env=_env(), cwd=cwd,
                         stdin_text=job_source(framework), on_line=line_reader(framework, listen))
    found = payload.emitted(proc.stdout)
    if not found:
        return _died(framework, proc, f"the {framework} job")
    return from_report(found[-1])


def torchrun_argv(python: str, nproc: int, script: str, ctx: dict, nnodes: int = 1, endpoint: str = "",
                  nodes: multinode.Nodes | None = None) -> list[str]:
    argv = [python, "-m", "torch.distributed.run"]
    if nodes is not None:  # torchrun's c10d rendezvous; node rank 0 hosts its store
        argv += ["--nnodes", str(nodes.nnodes), "--rdzv-backend", "c10d", "--rdzv-endpoint", nodes.endpoint,
                 "--rdzv-id", nodes.rdzv_id, "--rdzv-conf", nodes.rdzv_conf()]
    elif nnodes == 1 and not endpoint:
        argv += ["--standalone", "--nnodes", "1"]
    else:
        argv += ["--nnodes", str(nnodes), "--rdzv-backend", "c10d", "--rdzv-endpoint", endpoint,
                 "--rdzv-id", "tbdoctor-verify"]
    return argv + ["--nproc-per-node", str(nproc), script, json.dumps(ctx)]


def run_distributed(target: Target, ctx: dict, nproc: int, timeout: float,
                    listen: Listener = quiet, nodes: multinode.Nodes | None = None) -> tuple[JobRun, Phase, dict]:
    """The torch job under torchrun, on this machine or as one of ``nodes``:
    (this node's lowest rank's job, the distributed phase, details)."""
    details = {"nproc": nproc, "backend": ctx.get("backend"), "launcher": "torchrun"}
    if nodes is not None:
        details.update(nodes.to_dict())
        found = multinode.local_problems(nodes, os.environ)
        if found:
            details["problems"] = found
            return (JobRun("torch", []), Phase("distributed", FAIL, 0.0, found[0]["detail"], found[0]["fix"]),
                    details)
    source = job_source("torch")
    with tempfile.TemporaryDirectory(prefix="tbdoctor-verify-") as cwd:
        script = os.path.join(cwd, "tbdoctor_verify_job.py")
        with open(script, "w", encoding="utf-8") as fh:
            fh.write(source)
        argv = torchrun_argv(target.python, nproc, script, ctx, nodes=nodes)
        proc = procs.run(argv, timeout=timeout, env=_env(), cwd=cwd, on_line=line_reader("torch", listen))
        kept = _keep_script(script, ctx["run_dir"])
    ranks = {r.get("rank"): r for r in payload.emitted(proc.stdout)}
    details.update(job_script=kept)
    if nodes is None:
        details["multi_node_command"] = multi_node_command(nproc, ctx, kept or "tbdoctor_verify_job.py")
    if not ranks:
        job = _died("torch", proc, "torchrun")
        why = proc.failure() or "no result"
        named = multinode.launch_problem(nodes, proc.stderr) if nodes is not None else None
        if named:
            details["problems"] = [named]
            return (JobRun("torch", [], notes=job.notes),  # the job never started: only the rendezvous failed
                    Phase("distributed", FAIL, proc.seconds, named["detail"], named["fix"]), details)
        return job, Phase("distributed", FAIL, proc.seconds, f"torchrun with {nproc} processes: {why}: "
                          f"{_stderr_reason(proc)}", "run `tbdoctor verify` without --distributed first; "
                          "then check that torch.distributed works (gloo on CPU, NCCL on GPUs)"), details
    first = ranks[min(ranks)]
    job = from_report(first)
    gathered = first.get("distributed") or {}
    details.update({k: gathered.get(k) for k in ("backend", "world_size", "max_spread")})
    details["ranks"] = [{k: v for k, v in r.items() if k != "node"} for r in gathered.get("ranks", [])]
    world = nproc * (nodes.nnodes if nodes is not None else 1)
    problems = []
    if nodes is None:
        missing = sorted(set(range(world)) - set(ranks))
    else:
        details["nodes"] = multinode.node_table(gathered.get("ranks", []))
        problems = multinode.node_problems(details["nodes"], nodes.nnodes) if gathered.get("ranks") else []
        if gathered.get("hung"):
            problems = [multinode.hang_problem(gathered["hung"], world)]
        if problems:
            details["problems"] = problems
        here = [row["ranks"] for row in details["nodes"] if min(ranks) in row["ranks"]]
        missing = sorted(set(here[0] if here else ranks) - set(ranks))
    phase = Phase("distributed", PASS, proc.seconds)
    if problems:
        phase.status, phase.detail, phase.fix = FAIL, problems[0]["detail"], problems[0]["fix"]
    elif job.phases and any(p.status == FAIL for p in job.phases):
        phase.status, phase.detail = SKIPPED, f"the job failed on rank {min(ranks)}"
    elif missing or not proc.ok:
        phase.status, phase.detail = FAIL, (f"ranks {missing} did not report" if missing
                                            else f"torchrun {proc.failure()}: {_stderr_reason(proc)}")
        phase.fix = "rerun with -v to see every rank's output"
    elif gathered.get("world_size") != world:
        phase.status, phase.detail = FAIL, f"world size {gathered.get('world_size')}, expected {world}"
    elif (gathered.get("max_spread") or 0.0) > 1e-6:
        phase.status = FAIL
        phase.detail = f"the ranks' parameters differ by {gathered['max_spread']:.3g} after all-reduce"
        phase.fix = "gradients are not being all-reduced: check the backend and the network between ranks"
    else:
        where = f" on {nodes.nnodes} nodes" if nodes is not None else ""
        phase.detail = (f"{world} ranks{where}, backend {gathered.get('backend')}, gradients all-reduced, "
                        f"parameters identical on every rank")
    return job, phase, details


def _stderr_reason(proc: procs.ProcResult) -> str:
    lines = [l for l in proc.stderr.strip().splitlines() if l.strip() and not l.startswith(("*", "W", "I"))]
    return lines[-1].strip()[:300] if lines else "no error output"


def _keep_script(script: str, run_dir: str) -> str:
    """Copy the job next to its event files, for the multi-machine command ('' if impossible)."""
    kept = os.path.join(run_dir, os.path.basename(script))
    try:
        shutil.copyfile(script, kept)
    except OSError:
        return ""
    return kept


def multi_node_command(nproc: int, ctx: dict, script: str) -> str:
    """The torchrun line to run the same job across machines: the same on each,
    with HOST0 the address of the first one (its rank 0 writes the event files)."""
    ctx = dict(ctx, run_dir="tbdoctor-verify-multinode")
    argv = torchrun_argv("python", nproc, script, ctx, nnodes=2, endpoint="HOST0:29400")
    argv[0:3] = ["torchrun"]
    return quote_command(argv)
