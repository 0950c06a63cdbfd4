"""``tbdoctor check``: probe the target, apply the rules, render the report."""

from __future__ import annotations

import os
import sys

from tbdoctor import (__version__, cache, facts as facts_mod, payload, pipcmd, policy as policy_mod, probe, render, rules,
                      solve, target as target_mod)
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
        if getattr(args, "logdir", None):
            raise UsageError("--logdir reads event files now; it cannot be combined with --facts "
                             "(facts saved with --logdir replay its findings)")
        facts = facts_mod.load(args.facts)
        notes.append(f"facts loaded from {args.facts} (collected {facts.get('collected_at', '?')}), nothing probed")
        target = facts.get("target") or {}
    else:
        if args.timeout is not None and args.timeout <= 0:
            raise UsageError(f"--timeout {args.timeout:g}: must be a positive number of seconds")
        chosen = target_mod.choose(args.python)
        facts = _probe_or_reuse(chosen, only, args, notes)
        target = chosen.to_dict()
        if getattr(args, "logdir", None):  # the user's event files: tbdoctor/commands/logdir.py
            from tbdoctor.commands import logdir
            data, meta = logdir.probe_logdir(chosen, logdir.resolve(args.logdir), args.timeout or probe.DEFAULT_TIMEOUT)
            facts = dict(facts, logdir=data, probes=dict(facts.get("probes") or {}, logdir=meta))
    if args.save_facts:
        facts_mod.save(facts, args.save_facts)
    ignore = list(args.ignore)
    policy = policy_mod.find(getattr(args, "policy", None))
    if policy:  # the policy rules read it from the facts; its ignore list adds to --ignore
        facts = dict(facts, policy=policy.to_dict())
        ignore += policy.ignore
        only = only and [*only, "policy"]
        notes.append(f"policy: {policy.source}")
    if getattr(args, "pip_sources", None) is not None:  # for `fix`, which refuses PEP 668 itself (or is overridden)
        facts = dict(facts, for_fix=True)
    findings = rules.select(rules.evaluate(facts), only=only, ignore=ignore)
    findings, note = _solve(args, facts, findings)
    if note:
        notes.append(note)
    return Report(target=target, findings=findings, facts=facts, tbdoctor_version=__version__, notes=notes)


def _solve(args, facts: dict, findings: list) -> tuple[list, str]:
    """The findings with install commands that pip's resolver accepts (tbdoctor/solve.py)."""
    if args.facts:
        return solve.unverified(findings, "the facts were loaded from a file")
    if args.quick:
        return solve.unverified(findings, "skipped by --quick")
    if not (facts.get("packages") and (facts.get("python") or {}).get("pip") is not None):
        return solve.unverified(findings, "the installed packages were not probed")
    pip = pipcmd.Pip.for_facts(facts, getattr(args, "pip_sources", ()),  # fix's --index-url etc.
                               break_system=bool(facts["python"].get("externally_managed")))
    return solve.check(facts, findings, pip, use_cache=not (args.no_cache or os.environ.get("TBDOCTOR_NO_CACHE")))


def _probe_or_reuse(chosen, only, args, notes: list[str]) -> dict:
    """Facts from the cache when the environment's fingerprint is unchanged, else probed."""
    timeout = args.timeout or probe.DEFAULT_TIMEOUT
    run, skipped = probe.select(only, quick=args.quick)
    names = ", ".join(p.name for p in skipped)
    key = None
    if not (args.no_cache or os.environ.get("TBDOCTOR_NO_CACHE")):
        try:
            key = cache.fingerprint(chosen, payload.run_payload(chosen, "fingerprint.py", timeout)["digest"])
        except (payload.ProbeFailed, KeyError, TypeError):
            key = None  # the probes will say what is wrong with this interpreter
        hit = key and cache.load(chosen, key, {p.name for p in run})
        if hit and getattr(args, "verbose", False) and not (hit[0].get("packages") or {}).get("hashed"):
            hit = None  # -v compares the installed files' hashes with RECORD: probe again
        if hit:
            facts, age = hit
            notes.append(f"facts from the cache, {age:.0f} s old (nothing changed since; --no-cache to probe again)")
            if skipped:  # only complete snapshots are cached: the framework results are in it
                notes.append(f"--quick: nothing skipped: the framework results ({names}) are from the cache too")
            return facts
    if skipped:
        notes.append(f"--quick: skipped the framework imports ({names})")
    facts = _collect(chosen, run, timeout, skipped, hash_files=bool(getattr(args, "verbose", False)))
    if key:
        cache.store(chosen, key, facts)
    return facts


def _collect(chosen, probes, timeout: float, skipped, hash_files: bool = False) -> dict:
    if not sys.stderr.isatty():
        return probe.collect(chosen, probes, timeout, skipped=skipped, hash_files=hash_files)
    from rich.console import Console
    pending = [p.name for p in probes]
    console = Console(stderr=True)
    with console.status(f"Probing {chosen.python}: {', '.join(pending)}") as status:
        def done(name: str) -> None:
            pending.remove(name)
            status.update(f"Probing {chosen.python}: {', '.join(pending) or 'done'}")
        return probe.collect(chosen, probes, timeout, on_done=done, skipped=skipped, hash_files=hash_files)


def run(args) -> int:
    report = build_report(args)
    strict = args.strict or bool((report.facts.get("policy") or {}).get("strict"))
    code = EXIT_PROBLEMS if report.failed(strict=strict) else EXIT_OK
    if getattr(args, "verify", False):  # then the job: tbdoctor/commands/verify.py
        from tbdoctor.commands import verify
        return verify.after_check(args, report, code, strict)
    render.emit(report, "json" if args.json else args.format, args.output, strict=strict, verbose=args.verbose)
    return code
