"""The fix planner: the findings' Fix actions -> an ordered, merged Plan. Pure.

Reads nothing but ``Finding`` and ``Fix`` (kind, packages, options): no probe,
no subprocess, no parsing of commands. The order is ensurepip (pip-bootstrap) first,
then one merged pip-uninstall, then the pip-install steps grouped by the pip
options their fix carries (``--index-url ...``, ``--force-reinstall``), groups that pick
an index or wheelhouse first. Requirements for one project are merged into
one (their specifiers intersected) and live in one group only. ``env`` and
``manual`` actions are shown, never run; a pip action that a finding lists
after one of its manual actions depends on that manual step, so it is shown
as manual too.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from tbdoctor.findings import ERROR, WARNING, Finding, Fix

BOOTSTRAP, UNINSTALL, INSTALL = "pip-bootstrap", "pip-uninstall", "pip-install"
RUNNABLE = (BOOTSTRAP, UNINSTALL, INSTALL)
# Options that choose where packages come from: a group with one goes first,
# and a project asked for there is installed from there only.
_SOURCE_OPTIONS = ("--index-url", "-i", "--extra-index-url", "--find-links", "-f", "--no-index")
# Built once per CUDA variant and served by PyTorch's own index.
TORCH_FAMILY = ("torch", "torchvision", "torchaudio")


@dataclass(frozen=True)
class Step:
    """One pip invocation the plan runs: what, with which options, and why."""

    kind: str  # pip-bootstrap | pip-uninstall | pip-install
    packages: tuple[str, ...] = ()  # requirement strings (install) or names (uninstall)
    options: tuple[str, ...] = ()  # pip options taken from the fix commands
    reasons: tuple[tuple[str, str], ...] = ()  # (finding id, finding title)


@dataclass(frozen=True)
class ManualStep:
    """An action tbdoctor shows and never runs."""

    kind: str  # env | manual | the kind of a pip action that waits for a manual one
    command: str
    finding: str
    title: str


@dataclass
class Plan:
    steps: list[Step] = field(default_factory=list)
    manual: list[ManualStep] = field(default_factory=list)

    @property
    def uninstalls(self) -> set[str]:
        return {canonicalize_name(n) for s in self.steps if s.kind == UNINSTALL for n in s.packages}

    @property
    def installs(self) -> list[str]:
        return [r for s in self.steps if s.kind == INSTALL for r in s.packages]


def command_options(fix: Fix) -> tuple[str, ...]:
    """The pip options of a fix (data the rule gave, never parsed back out of its command)."""
    return fix.options


def _picks_source(options: tuple[str, ...]) -> bool:
    return any(o.split("=", 1)[0] in _SOURCE_OPTIONS for o in options)


def _merge(first: str, second: str) -> str:
    """One requirement for a project asked for twice (specifiers intersected, extras joined)."""
    try:
        a, b = Requirement(first), Requirement(second)
    except InvalidRequirement:
        return first
    if a.url or b.url:
        return first if a.url else second
    extras = sorted(a.extras | b.extras)
    merged = f"{a.name}{'[' + ','.join(extras) + ']' if extras else ''}{a.specifier & b.specifier}"
    if a.marker is not None and str(a.marker) == str(b.marker):
        merged += f"; {a.marker}"
    return merged


def project_key(requirement: str) -> str:
    try:
        return canonicalize_name(Requirement(requirement).name)
    except InvalidRequirement:
        return requirement


def selected(finding: Finding, only: list[str] | None) -> bool:
    """A problem finding that ``only``'s id patterns (if any) ask to fix."""
    if finding.status not in (ERROR, WARNING):
        return False
    return not only or any(fnmatch.fnmatchcase(finding.id, pattern) for pattern in only)


def build(findings: list[Finding], only: list[str] | None = None, torch_source: tuple[str, ...] = ()) -> Plan:
    """The plan for the problem findings (those matching ``only``'s id patterns, if given).

    ``torch_source`` (``--index-url`` of the CUDA variant for this machine) is added to
    an install of the torch family whose fix names no source of its own."""
    plan = Plan()
    bootstrap: list[tuple[str, str]] = []
    uninstall: dict[str, str] = {}  # canonical -> name as written
    uninstall_reasons: list[tuple[str, str]] = []
    groups: dict[tuple[str, ...], dict[str, str]] = {}  # options -> canonical -> requirement
    group_reasons: dict[tuple[str, ...], list[tuple[str, str]]] = {}
    for finding in findings:
        if not selected(finding, only):
            continue
        reason = (finding.id, finding.title)
        waiting = False  # a manual action came first: the rest of this finding's fix waits for it
        for fix in finding.fixes:
            if fix.kind not in RUNNABLE or waiting:
                waiting = True
                plan.manual.append(ManualStep(fix.kind, fix.command, finding.id, finding.title))
                continue
            if fix.kind == BOOTSTRAP:
                bootstrap.append(reason)
            elif fix.kind == UNINSTALL:
                for name in fix.packages:
                    uninstall.setdefault(canonicalize_name(name), name)
                uninstall_reasons.append(reason)
            else:
                for req in fix.packages:
                    options = command_options(fix)
                    if torch_source and project_key(req) in TORCH_FAMILY and not _picks_source(options):
                        options = torch_source + options
                    group = groups.setdefault(options, {})
                    group[project_key(req)] = _merge(group[project_key(req)], req) if project_key(req) in group else req
                    group_reasons.setdefault(options, []).append(reason)
    if bootstrap:
        plan.steps.append(Step(BOOTSTRAP, reasons=tuple(dict.fromkeys(bootstrap))))
    if uninstall:
        plan.steps.append(Step(UNINSTALL, tuple(uninstall.values()), reasons=tuple(dict.fromkeys(uninstall_reasons))))
    plan.steps.extend(_install_steps(groups, group_reasons))
    return plan


def _install_steps(groups: dict, reasons: dict) -> list[Step]:
    """One step per option group, source-picking groups first; a project asked for
    in several groups is installed once, from the first group that names it."""
    ordered = sorted(groups, key=lambda opts: not _picks_source(opts))  # stable: first appearance otherwise
    owner: dict[str, tuple[str, ...]] = {}
    for options in ordered:
        for key in groups[options]:
            owner.setdefault(key, options)
    for options in ordered:
        for key, req in list(groups[options].items()):
            home = owner[key]
            if home != options:
                groups[home][key] = _merge(groups[home][key], req)
                del groups[options][key]
    return [Step(INSTALL, tuple(groups[o].values()), o, tuple(dict.fromkeys(reasons[o])))
            for o in ordered if groups[o]]
