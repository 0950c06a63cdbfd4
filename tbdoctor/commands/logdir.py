"""``tbdoctor logdir DIR``: the user's event files as the target's TensorBoard reads
them (runs, tags per plugin, steps, last write), and what keeps them from showing.

Also ``probe_logdir``, which ``check --logdir DIR`` adds to its facts.
"""

from __future__ import annotations

import datetime
import json
import os
import sys

from tbdoctor import __version__, payload, probe, rules, target as target_mod
from tbdoctor.errors import EXIT_OK, EXIT_PROBLEMS, UsageError
from tbdoctor.findings import Report
from tbdoctor.rules import logdir as logdir_rules

_SHOWN_RUNS = 50


def resolve(path: str) -> str:
    """DIR made absolute; a local DIR that is missing or a file is a usage error."""
    if "://" in path:
        return path
    full = os.path.abspath(os.path.expanduser(path))
    if not os.path.exists(full):
        raise UsageError(f"{path}: no such directory")
    if not os.path.isdir(full):
        raise UsageError(f"{path}: is a file, not a directory (give TensorBoard the folder it is in)")
    return full


def probe_logdir(chosen: target_mod.Target, path: str, timeout: float) -> tuple[dict | None, dict]:
    """(facts["logdir"], facts["probes"]["logdir"]): a failed read is a probe.logdir finding."""
    meta = {"status": "ok", "section": "tensorboard", "seconds": 0.0}
    try:
        return payload.run_payload(chosen, "logdir.py", timeout, {"logdir": path, "cwd": os.getcwd()}, watch=True), meta
    except payload.ProbeFailed as exc:
        return None, dict(meta, status="failed", error=str(exc), stderr_tail=exc.stderr_tail)


def run(args) -> int:
    path = resolve(args.dir)
    if args.timeout is not None and args.timeout <= 0:
        raise UsageError(f"--timeout {args.timeout:g}: must be a positive number of seconds")
    chosen = target_mod.choose(args.python)
    data, meta = probe_logdir(chosen, path, args.timeout or probe.DEFAULT_TIMEOUT)
    facts = {"target": chosen.to_dict(), "logdir": data, "probes": {"logdir": meta}}
    findings = rules.evaluate(facts, logdir_rules.RULES)
    report = Report(target=chosen.to_dict(), findings=findings, facts=facts, tbdoctor_version=__version__)
    code = EXIT_PROBLEMS if report.failed(strict=False) else EXIT_OK
    if args.json:
        out = {"schema": "tbdoctor.logdir/1", "tbdoctor": __version__, "target": chosen.to_dict(),
               "logdir": data, "checks": [f.to_dict() for f in findings]}
        sys.stdout.write(json.dumps(out, indent=2, default=str) + "\n")
        return code
    from tbdoctor.render import console as console_mod
    out = console_mod.make_console()
    if data and data.get("runs"):
        out.print(runs_table(data))
    console_mod.render(report, out, verbose=args.verbose)
    return code


def runs_table(data: dict):
    """One row per run: its tags by plugin, steps, records and last write."""
    from rich.table import Table
    table = Table(title=f"{data['logdir']}: {data['run_count']} run(s)", title_justify="left")
    for name in ("Run", "Tags (by plugin)", "Steps", "Records", "Last write"):
        table.add_column(name, no_wrap=name != "Tags (by plugin)")
    for run in data["runs"][:_SHOWN_RUNS]:
        tags = "; ".join(f"{plugin}: {', '.join(sorted(names)[:8])}" + (" …" if len(names) > 8 else "")
                         for plugin, names in sorted(run["tags"].items())) or "(none)"
        steps = f"{run['steps'][0]}-{run['steps'][1]}" if run.get("steps") else "-"
        when = datetime.datetime.fromtimestamp(run["last_write"]).strftime("%Y-%m-%d %H:%M:%S") \
            + _age(data.get("read_at", 0) - run["last_write"]) if run.get("last_write") else "-"
        table.add_row(run["name"], tags, steps, str(run["records"]), when)
    if data["run_count"] > _SHOWN_RUNS:
        table.caption = f"… and {data['run_count'] - _SHOWN_RUNS} more runs"
    return table


def _age(seconds: float) -> str:
    """' (5 min ago)': how long before the read the run last wrote."""
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f" ({seconds // size:.0f} {unit} ago)"
    return " (just now)" if seconds >= 0 else ""
