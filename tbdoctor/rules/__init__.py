"""All rules, in report order, and ``evaluate(facts) -> findings``.

A rule is a pure function ``rule(facts) -> list[Finding]``: no subprocess, no
I/O beyond the bundled tables, no rich. Rules read a failed probe's ``None`` as
"unknown" and return nothing for it; the probe's own failure becomes a
``probe.<name>`` finding here.
"""

from __future__ import annotations

import fnmatch
import traceback
from dataclasses import replace

from tbdoctor.findings import ERROR, SKIPPED, Finding
from tbdoctor.rules import (causes, cuda, distributed, gpu, gpu_builds, gpu_health, integrity, jax, knowledge, numpy,
                            ownership, pip, policy, python, pytorch, stack, tensorboard, tensorflow)

RULES = python.RULES + pip.RULES + gpu.RULES + gpu_health.RULES + cuda.RULES + pytorch.RULES + tensorflow.RULES \
    + jax.RULES + tensorboard.RULES + numpy.RULES + stack.RULES + integrity.RULES + gpu_builds.RULES + knowledge.RULES \
    + distributed.RULES + policy.RULES

# Steps over all findings, after the rules: one cause, one fix; then what pip may not touch.
POST = (causes.group, ownership.guard)


def probe_failures(facts: dict) -> list[Finding]:
    findings = []
    for name, meta in (facts.get("probes") or {}).items():
        if meta.get("status") == "ok" or meta.get("charged"):  # charged: reported on the package that failed
            continue
        if meta.get("status") == "skipped":
            findings.append(Finding(f"probe.{name}", SKIPPED, f"The {name} probe was {meta.get('error', 'skipped')}",
                                    section=meta.get("section") or "tbdoctor"))
            continue
        tail = meta.get("stderr_tail") or ""
        findings.append(Finding(
            f"probe.{name}", ERROR, f"The {name} probe {meta.get('error', 'failed')}",
            detail=("stderr ends with:\n" + tail) if tail else "It printed nothing on stderr.",
            hint="The facts it gathers are unknown; the rest of the report is complete. "
                 "A crash here usually means an import in this environment crashes too.",
            section=meta.get("section") or "tbdoctor", seconds=meta.get("seconds", 0.0)))
    return findings


def evaluate(facts: dict, rules=None) -> list[Finding]:
    """Run every rule over ``facts`` (a rule that raises becomes internal.rule-crashed), then
    group the findings that follow from one root cause under it (``causes.group``) and keep
    pip away from files a package manager owns (``ownership.guard``)."""
    findings = probe_failures(facts)
    seconds = {meta.get("section"): meta.get("seconds", 0.0) for meta in (facts.get("probes") or {}).values()}
    for rule in RULES if rules is None else rules:
        try:
            produced = rule(facts)
        except Exception as exc:
            produced = [Finding(
                "internal.rule-crashed", ERROR, f"Rule {rule.__module__}.{rule.__name__} crashed: {type(exc).__name__}: {exc}",
                hint="This is a bug in tbdoctor; please report it with `tbdoctor check --save-facts facts.json`.",
                section="tbdoctor", verbose_detail=traceback.format_exc())]
        for f in produced:
            findings.append(f if f.seconds or f.section not in seconds else replace(f, seconds=seconds[f.section]))
    for step in POST:
        findings = step(facts, findings)
    return findings


def select(findings: list[Finding], only: list[str] | None = None, ignore: list[str] | None = None) -> list[Finding]:
    """Keep the sections in ``only``; mark ids matching an ``ignore`` pattern as skipped."""
    kept = []
    for f in findings:
        if only and f.section not in only:
            continue
        if ignore and any(fnmatch.fnmatchcase(f.id, pat) for pat in ignore):
            f = replace(f, status=SKIPPED, detail=(f.detail + " " if f.detail else "") + "(ignored by --ignore)",
                        fixes=())
        kept.append(f)
    return kept
