"""One diagnosis: facts (probed or loaded) -> rules -> findings -> a Report, with pip
checking the install commands. ``check``, ``report``, ``fix`` and ``setup`` call it."""

from __future__ import annotations

import os
import sys
from typing import Sequence

from tbdoctor import (__version__, cache, facts as facts_mod, payload, pipcmd, policy as policy_mod, probe, rules, solve,
                      target as target_mod)
from tbdoctor.errors import UsageError
from tbdoctor.findings import SECTIONS, Report


def diagnose(python: str | None, sections: Sequence[str] = (), timeout: float | None = None, *,
             ignore: Sequence[str] = (), quick: bool = False, use_cache: bool = True, verbose: bool = False,
             facts_file: str | None = None, save_facts: str | None = None, policy: str | None = None,
             logdir: str | None = None, pip_sources: Sequence[str] | None = None) -> Report:
    """Facts (probed from interpreter ``python``, or loaded from ``facts_file``) -> findings -> Report.

    ``sections`` limits the report (``--only``); ``verbose`` hashes the installed files;
    ``pip_sources`` (``fix``'s --index-url etc., possibly none) has pip check the install
    commands with those sources and marks the facts as read for a fix."""
    only = list(sections) or None
    unknown = sorted(set(only or ()) - set(SECTIONS))
    if unknown:
        raise UsageError(f"--only {unknown[0]}: unknown section (choose from {', '.join(SECTIONS)})")
    notes = []
    if facts_file:
        if logdir:
            raise UsageError("--logdir reads event files now; it cannot be combined with --facts "
                             "(facts saved with --logdir replay its findings)")
        facts = facts_mod.load(facts_file)
        notes.append(f"facts loaded from {facts_file} (collected {facts.get('collected_at', '?')}), nothing probed")
        target = facts.get("target") or {}
    else:
        if timeout is not None and timeout <= 0:
            raise UsageError(f"--timeout {timeout:g}: must be a positive number of seconds")
        chosen = target_mod.choose(python)
        facts = _probe_or_reuse(chosen, only, timeout or probe.DEFAULT_TIMEOUT, quick, use_cache, verbose, notes)
        target = chosen.to_dict()
        if logdir:  # the user's event files: tbdoctor/commands/logdir.py
            from tbdoctor.commands import logdir as logdir_cmd
            data, meta = logdir_cmd.probe_logdir(chosen, logdir_cmd.resolve(logdir), timeout or probe.DEFAULT_TIMEOUT)
            facts = dict(facts, logdir=data, probes=dict(facts.get("probes") or {}, logdir=meta))
    if save_facts:
        facts_mod.save(facts, save_facts)
    ignore = list(ignore)
    found = policy_mod.find(policy)
    if found:  # the policy rules read it from the facts; its ignore list adds to --ignore
        facts = dict(facts, policy=found.to_dict())
        ignore += found.ignore
        only = only and [*only, "policy"]
        notes.append(f"policy: {found.source}")
    if pip_sources is not None:  # for `fix`, which refuses PEP 668 itself (or is overridden)
        facts = dict(facts, for_fix=True)
    findings = rules.select(rules.evaluate(facts), only=only, ignore=ignore)
    findings, note = _solve(facts, findings, facts_file, quick, use_cache, pip_sources or ())
    if note:
        notes.append(note)
    return Report(target=target, findings=findings, facts=facts, tbdoctor_version=__version__, notes=notes)


def _solve(facts: dict, findings: list, facts_file: str | None, quick: bool, use_cache: bool,
           pip_sources: Sequence[str]) -> tuple[list, str]:
    """The findings with install commands that pip's resolver accepts (tbdoctor/solve.py)."""
    if facts_file:
        return solve.unverified(findings, "the facts were loaded from a file")
    if quick:
        return solve.unverified(findings, "skipped by --quick")
    if not (facts.get("packages") and (facts.get("python") or {}).get("pip") is not None):
        return solve.unverified(findings, "the installed packages were not probed")
    pip = pipcmd.Pip.for_facts(facts, tuple(pip_sources),  # fix's --index-url etc.
                               break_system=bool(facts["python"].get("externally_managed")))
    return solve.check(facts, findings, pip, use_cache=use_cache and not os.environ.get("TBDOCTOR_NO_CACHE"))


def _probe_or_reuse(chosen, only, timeout: float, quick: bool, use_cache: bool, verbose: bool,
                    notes: list[str]) -> dict:
    """Facts from the cache when the environment's fingerprint is unchanged, else probed."""
    run, skipped = probe.select(only, quick=quick)
    names = ", ".join(p.name for p in skipped)
    key = None
    if use_cache and not os.environ.get("TBDOCTOR_NO_CACHE"):
        try:
            key = cache.fingerprint(chosen, payload.run_payload(chosen, "fingerprint.py", timeout)["digest"])
        except (payload.ProbeFailed, KeyError, TypeError):
            key = None  # the probes will say what is wrong with this interpreter
        hit = key and cache.load(chosen, key, {p.name for p in run})
        if hit and verbose and not (hit[0].get("packages") or {}).get("hashed"):
            hit = None  # -v compares the installed files' hashes with RECORD: probe again
        if hit:
            facts, age = hit
            notes.append(f"facts from the cache, {age:.0f} s old (nothing changed since; --no-cache to probe again)")
            if skipped:  # only complete snapshots are cached: the framework results are in it
                notes.append(f"--quick: nothing skipped: the framework results ({names}) are from the cache too")
            return facts
    if skipped:
        notes.append(f"--quick: skipped the framework imports ({names})")
    facts = _collect(chosen, run, timeout, skipped, "hashes" if verbose else "folders" if quick else "files")
    if key and not quick:  # --quick looks at the stack's folders, not each file: not a snapshot to reuse
        cache.store(chosen, key, facts)
    return facts


def _collect(chosen, probes, timeout: float, skipped, integrity: str) -> dict:
    if not sys.stderr.isatty():
        return probe.collect(chosen, probes, timeout, skipped=skipped, integrity=integrity)
    from rich.console import Console
    pending = [p.name for p in probes]
    console = Console(stderr=True)
    with console.status(f"Probing {chosen.python}: {', '.join(pending)}") as status:
        def done(name: str) -> None:
            pending.remove(name)
            status.update(f"Probing {chosen.python}: {', '.join(pending) or 'done'}")
        return probe.collect(chosen, probes, timeout, on_done=done, skipped=skipped, integrity=integrity)
