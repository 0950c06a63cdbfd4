"""Check the findings' pip fixes with pip's own resolver before they are shown.

Rules propose fixes from the installed metadata alone (pure). This step asks
pip (``install --dry-run --report``, ``pipcmd.Pip.dry_run``) whether the
whole plan installs at once while every other installed requirer of what it
installs keeps its version. A requirement that a rule derived from the
requirers (``rules.common.wanted``) is first derived again without the limits
of packages the plan itself upgrades or removes. When the whole plan does not
resolve, the findings are tried one by one: a fix pip rejects is replaced by
an upgrade (else a downgrade) of one requirer that pip accepts, or by no
command at all and a hint naming the requirers that conflict. Answers are
cached for an hour, keyed on the question and the installed distributions;
when the index cannot be reached (or pip is too slow) the fixes are shown
"not verified by pip" and nothing is cached.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import replace

from packaging.requirements import InvalidRequirement, Requirement
from packaging.version import InvalidVersion, Version

from tbdoctor import cache, pipcmd, plan as plan_mod
from tbdoctor.findings import Finding
from tbdoctor.plan import INSTALL, project_key
from tbdoctor.rules.common import installed, pip_install, requirements, requirers, wanted

TIMEOUT = 60.0  # one dry run, seconds
BUDGET = 120.0  # all dry runs of one check, seconds
MAX_AGE = 3600.0  # a cached answer, seconds (the index changes)
_NETWORK = ("--retries", "1", "--timeout", "10")  # fail fast when no index answers
_DROP = ("--force-reinstall", "--no-deps", "--ignore-installed", "-I")  # what a dry run of the set needs not


class _Unreachable(Exception):
    pass


def _has_install(finding: Finding) -> bool:
    return any(fix.kind == INSTALL for fix in finding.fixes)


def _moved(facts: dict, plan: plan_mod.Plan) -> frozenset[str]:
    """Installed projects the plan removes, upgrades or asks for in another version."""
    have = installed(facts)
    asked: dict[str, tuple[str, bool]] = {}
    for step in plan.steps:
        if step.kind == INSTALL:
            for req in step.packages:
                asked[project_key(req)] = (req, "--upgrade" in step.options or "-U" in step.options)
    moved = {name for name in plan.uninstalls if name not in asked}
    for key, (raw, upgrade) in asked.items():
        dist = have.get(key)
        try:
            if dist and (upgrade or not Requirement(raw).specifier.contains(Version(dist["version"]), prereleases=True)):
                moved.add(key)
        except (InvalidRequirement, InvalidVersion):
            moved.add(key)
    return frozenset(moved)


def _same(a: str, b: str) -> bool:
    try:
        ra, rb = Requirement(a), Requirement(b)
    except InvalidRequirement:
        return False
    return project_key(a) == project_key(b) and ra.specifier == rb.specifier


def _rederive(facts: dict, finding: Finding, moved: frozenset[str]) -> Finding:
    """``finding`` with each requirement derived from the requirers derived again without
    the requirers in ``moved`` (their limits go with the version the plan replaces)."""
    fixes, renamed = [], {}
    for fix in finding.fixes:
        new = list(fix.packages)
        if fix.kind == INSTALL:
            for i, raw in enumerate(fix.packages):
                key = project_key(raw)
                if _same(raw, wanted(facts, key)) and any(project_key(d["name"]) in moved for d, _ in requirers(facts, key)):
                    new[i] = wanted(facts, key, ignore=moved - {key})
                    renamed[raw] = new[i]
        fixes.append(fix if new == list(fix.packages) else
                     pip_install(facts, *new, options=plan_mod.command_options(fix)))
    if not renamed:
        return finding
    hint = finding.hint
    for old, new in renamed.items():
        hint = hint.replace(old, new)
    return replace(finding, fixes=tuple(fixes), hint=hint)


def _question(facts: dict, findings: list[Finding]) -> tuple[list[str], list[str]]:
    """(requirements, options) of one dry run: the plan's installs, plus each installed
    distribution that requires one of them and stays, pinned to its version. A pip action
    that waits for a manual step is printed too, so it is asked about as well."""
    plan = plan_mod.build([replace(f, fixes=tuple(x for x in f.fixes if x.kind in plan_mod.RUNNABLE))
                           for f in findings])
    reqs = plan.installs
    asked = {project_key(r) for r in reqs}
    pins = [f"{d['name']}=={d['version']}" for key, d in sorted(installed(facts).items())
            if key not in asked and key not in plan.uninstalls
            and any(project_key(r.name) in asked for r in requirements(facts, d))]
    groups: list[tuple[str, ...]] = []
    for step in plan.steps:
        options = tuple(token for token in step.options if token not in _DROP)
        if step.kind == INSTALL and options not in groups:
            groups.append(options)
    return reqs + pins, [token for options in groups for token in options]


class _Resolver:
    """pip's answers, cached on disk by question and installed distributions."""

    def __init__(self, facts: dict, pip: pipcmd.Pip, use_cache: bool):
        self.pip, self.use_cache = pip, use_cache
        self.deadline = time.monotonic() + BUDGET
        dists = sorted(f"{d['name']}=={d['version']}" for d in (facts.get("packages") or {}).get("distributions", ()))
        py = facts.get("python") or {}
        self.base = [pip.target, *pip.sources, *dists, json.dumps(py.get("pip") or {}, sort_keys=True),
                     *sorted(f"{k}={v}" for k, v in os.environ.items() if k.startswith("PIP_"))]

    def _path(self, reqs, options):
        key = hashlib.sha256(json.dumps([self.base, sorted(reqs), options]).encode()).hexdigest()[:32]
        return cache.cache_dir() / "resolver" / f"{key}.json"

    def ask(self, reqs: list[str], options: list[str]) -> tuple[bool, object]:
        """(True, dry-run items) or (False, pip's error lines)."""
        if not reqs:
            return True, []
        path = self._path(reqs, options)
        if self.use_cache:
            try:
                entry = json.loads(path.read_text(encoding="utf-8"))
                if 0 <= time.time() - entry["stored_at"] <= MAX_AGE:
                    return entry["ok"], entry["answer"]
            except (OSError, ValueError, KeyError):
                pass
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise _Unreachable(f"pip's resolver took more than {BUDGET:.0f} s")
        try:
            answer = (True, self.pip.dry_run(reqs, [*options, *_NETWORK], timeout=min(TIMEOUT, left)))
        except pipcmd.PipError as exc:
            if exc.unreachable:
                raise _Unreachable("the package index could not be reached (or pip took too long)") from None
            answer = (False, exc.tail or str(exc))
        if not self.use_cache:
            return answer
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({"stored_at": time.time(), "ok": answer[0], "answer": answer[1]}),
                            encoding="utf-8")
        except OSError:
            pass
        return answer


def unverified(findings: list[Finding], why: str) -> tuple[list[Finding], str]:
    """The findings with a hint that pip did not confirm their install commands."""
    if not any(_has_install(f) for f in findings):
        return findings, ""
    return ([replace(f, hint=f"{f.hint} (Not verified by pip: {why}.)".strip()) if _has_install(f) else f
             for f in findings], f"the pip install commands shown are not verified by pip: {why}")


def check(facts: dict, findings: list[Finding], pip: pipcmd.Pip, use_cache: bool = True) -> tuple[list[Finding], str]:
    """(findings with fixes pip accepts, a note for the report)."""
    problems = [f for f in findings if plan_mod.selected(f, None) and _has_install(f)]
    if not problems:
        return findings, ""
    why = pip.cannot_dry_run()
    if why:
        return unverified(findings, why)
    moved = _moved(facts, plan_mod.build(findings))
    findings = [_rederive(facts, f, moved) if f in problems else f for f in findings]
    resolver = _Resolver(facts, pip, use_cache)
    try:
        findings = [_reinstallable(facts, f, resolver) if f in problems else f for f in findings]
        ok, _ = resolver.ask(*_question(facts, [f for f in findings if plan_mod.selected(f, None)]))
        if ok:
            return findings, "pip's resolver confirmed that the pip install commands shown work together"
        return _one_by_one(facts, findings, moved, resolver), \
            "pip's resolver checked the pip install commands shown; what it rejected was replaced or left out"
    except _Unreachable as exc:
        return unverified(findings, str(exc))


def _reinstallable(facts: dict, f: Finding, resolver: _Resolver) -> Finding:
    """``f``, or ``f`` without its command when a version it reinstalls (--force-reinstall) is
    offered by no package source: the set's dry run cannot tell, an installed version satisfies it."""
    for fix in f.fixes:
        if fix.kind == INSTALL and "--force-reinstall" in plan_mod.command_options(fix):
            ok, why = resolver.ask(list(fix.packages), ["--no-deps", "--ignore-installed"])
            if not ok:
                return _no_command(facts, f, why)
    return f


def _one_by_one(facts: dict, findings: list[Finding], moved: frozenset[str], resolver: _Resolver) -> list[Finding]:
    base = [f for f in findings if plan_mod.selected(f, None) and not _has_install(f)]
    accepted: list[Finding] = []
    out = []
    for f in findings:
        if f in base or not plan_mod.selected(f, None):
            out.append(f)
            continue
        ok, why = resolver.ask(*_question(facts, base + accepted + [f]))
        if not ok:
            f = _alternative(facts, f, base + accepted, moved, resolver) or _no_command(facts, f, why)
        if _has_install(f):
            accepted.append(f)
        out.append(f)
    return out


def _conflict(facts: dict, name: str) -> str:
    return "; ".join(f"{d['name']} {d['version']} requires {r}" for d, r in requirers(facts, name))


def _alternative(facts: dict, f: Finding, others: list[Finding], moved: frozenset[str],
                 resolver: _Resolver) -> Finding | None:
    """``f`` with its fix replaced by a move of one requirer that pip accepts, or None."""
    reqs = [r for fix in f.fixes if fix.kind == INSTALL for r in fix.packages]
    if len(reqs) != 1:
        return None
    target = project_key(reqs[0])
    candidates = [d for d, _ in requirers(facts, target) if project_key(d["name"]) not in moved | {target}]
    for direction, op in (("upgrade", ">"), ("downgrade", "<")):
        for dist in candidates:
            key = project_key(dist["name"])
            want = wanted(facts, target, ignore=moved | {key})
            trial = replace(f, fixes=(pip_install(facts, f"{dist['name']}{op}{dist['version']}", want),))
            ok, items = resolver.ask(*_question(facts, others + [trial]))
            if not ok:
                continue
            chosen = next((i["version"] for i in items if project_key(i["name"]) == key), None)
            if chosen is None:
                continue
            return replace(f, fixes=(pip_install(facts, f"{dist['name']}=={chosen}", want),), hint=(
                f"No {target} satisfies every requirer ({_conflict(facts, target)}): {direction} {dist['name']} "
                f"to {chosen}, whose {target} range meets the others' (pip's resolver agrees)."))
    return None


def _no_command(facts: dict, f: Finding, why) -> Finding:
    line = next((ln for ln in str(why).splitlines() if ln.startswith("ERROR:")), str(why).splitlines()[0] if why else "")
    reqs = [project_key(r) for fix in f.fixes if fix.kind == INSTALL for r in fix.packages]
    who = "; ".join(filter(None, (_conflict(facts, r) for r in reqs)))
    kept = tuple(x for x in f.fixes if x.kind != INSTALL and x.kind != "pip-uninstall")
    if "(from versions: none)" in line:
        return replace(f, fixes=kept, hint=f"No command is shown: the package sources in force offer no release of "
                                            f"it at all. pip: {line[:300]}")
    return replace(f, fixes=kept, hint=(
        f"No command is shown: pip's resolver finds nothing that satisfies every requirer"
        f"{' (' + who + ')' if who else ''}; no upgrade or downgrade of one of them helps. pip: {line[:300]}"))
