"""``tbdoctor check``: probe the target, apply the rules, render the report."""

from __future__ import annotations

import sys

from tbdoctor import __version__, facts as facts_mod, probe, rules, target as target_mod
from tbdoctor.errors import EXIT_OK, EXIT_PROBLEMS, UsageError
from tbdoctor.findings import SECTIONS, Report


def build_report(args) -> Report:
    """Facts (probed, or loaded with --facts) -> findings -> Report."""
    only = args.only or None
    unknown = sorted(set(only or ()) - set(SECTIONS))
    if unknown:
        raise UsageError(f"--only {unknown[0]}: unknown section (choose from {', '.join(SECTIONS)})")
    notes = []
    if args.facts:
        facts = facts_mod.load(args.facts)
        notes.append(f"facts loaded from {args.facts} (collected {facts.get('collected_at', '?')}), nothing probed")
        target = facts.get("target") or {}
    else:
        if args.timeout is not None and args.timeout <= 0:
            raise UsageError(f"--timeout {args.timeout:g}: must be a positive number of seconds")
        chosen = target_mod.choose(args.python)
        facts = _collect(chosen, probe.select(only, quick=False), args.timeout or probe.DEFAULT_TIMEOUT)
        target = chosen.to_dict()
    if args.save_facts:
        facts_mod.save(facts, args.save_facts)
    findings = rules.select(rules.evaluate(facts), only=only, ignore=args.ignore)
    return Report(target=target, findings=findings, facts=facts, tbdoctor_version=__version__, notes=notes)


def _collect(chosen, probes, timeout: float) -> dict:
    if not sys.stderr.isatty():
        return probe.collect(chosen, probes, timeout)
    from rich.console import Console
    pending = [p.name for p in probes]
    console = Console(stderr=True)
    with console.status(f"Probing {chosen.python}: {', '.join(pending)}") as status:
        def done(name: str) -> None:
            pending.remove(name)
            status.update(f"Probing {chosen.python}: {', '.join(pending) or 'done'}")
        return probe.collect(chosen, probes, timeout, on_done=done)


def run(args) -> int:
    report = build_report(args)
    if getattr(args, "verify", False):  # then the job: tbdoctor/commands/verify.py
        from tbdoctor.commands import verify
        return verify.after_check(args, report, EXIT_PROBLEMS if report.failed(strict=args.strict) else EXIT_OK)
    if args.json:
        from tbdoctor.render import json_report
        sys.stdout.write(json_report.render(report))
    else:
        from tbdoctor.render import console
        console.render(report, console.make_console(), verbose=args.verbose)
    return EXIT_PROBLEMS if report.failed(strict=args.strict) else EXIT_OK
