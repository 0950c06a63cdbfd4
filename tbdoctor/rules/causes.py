"""One cause, one fix: findings that follow from a root cause are grouped under it. Pure.

Root causes: a package family installed twice (``<section>.duplicate-install``,
any family of ``checks/families.toml``) and a required distribution that is not
installed (``pip.missing-requirement``). A finding about a member of a duplicated
family (its subject), or whose fix installs or removes one, follows from the duplicate: its own fix is
dropped, and what it asked of the member that is kept is folded into the
root's one fix (uninstall every member, install that one member). A finding
that fails on a missing module of a missing distribution follows from
``pip.missing-requirement``. Followers keep their status and say which root
fixes them, so no plan installs two members of a family or contradicts itself.
"""

from __future__ import annotations

import re
from dataclasses import replace

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from tbdoctor import tables
from tbdoctor.findings import Finding
from tbdoctor.rules.common import fix_packages, pip_install

_INSTALL, _UNINSTALL = "pip-install", "pip-uninstall"
_NO_MODULE = re.compile(r"No module named '([\w.]+)'")


def _follows(finding: Finding, root: Finding, members: set[str]) -> bool:
    """A finding about a member (its subject: tb-nightly with setuptools >= 82) or whose fix moves one."""
    if finding is root or not any(fix.kind in (_INSTALL, _UNINSTALL) for fix in finding.fixes):
        return False
    return canonicalize_name(finding.subject or "") in members or any(
        fix.kind in (_INSTALL, _UNINSTALL) and set(fix_packages(fix)) & members for fix in finding.fixes)


def _family_of(root: Finding) -> set[str]:
    """The members of the family a duplicate-install finding is about."""
    section = root.id.split(".", 1)[0]
    names = {n for fix in root.fixes if fix.kind == _UNINSTALL for n in fix_packages(fix)}
    for family in tables.load("families")["family"]:
        members = {canonicalize_name(m) for m in family["members"]}
        if family["section"] == section and names & members:
            return members
    return set()


def _kept(root: Finding) -> Requirement | None:
    for fix in root.fixes:
        if fix.kind == _INSTALL and len(fix.packages) == 1:
            try:
                return Requirement(fix.packages[0])
            except InvalidRequirement:
                return None
    return None


def _fold(facts: dict, root: Finding, followers: list[Finding]) -> Finding:
    """The root with its install step asking what the followers asked of the kept member
    (instead of its installed version), when they asked anything of it."""
    keep = _kept(root)
    if keep is None:
        return root
    key = canonicalize_name(keep.name)
    asked = [Requirement(r) for f in followers for fix in f.fixes if fix.kind == _INSTALL
             for r in fix.packages if canonicalize_name(Requirement(r).name) == key]
    if not asked:
        return root
    spec = asked[0].specifier
    for req in asked[1:]:
        spec &= req.specifier
    wanted = f"{keep.name}{spec}"
    fixes = tuple(pip_install(facts, wanted) if fix.kind == _INSTALL else fix for fix in root.fixes)
    hint = root.hint.replace(str(keep), wanted)
    if wanted not in hint:
        hint = f"{hint} Install {wanted} (as {', '.join(f.id for f in followers)} asks)."
    return replace(root, fixes=fixes, hint=hint)


def _missing_module(finding: Finding) -> str | None:
    match = _NO_MODULE.search(finding.title + " " + finding.detail)
    return canonicalize_name(match.group(1).split(".")[0]) if match else None


def _module_names(project: str) -> set[str]:
    """Module names a project's name suggests (absl-py -> absl, pyyaml -> yaml); no metadata
    exists for a distribution that is not installed."""
    name = canonicalize_name(project)
    return {name, name.removeprefix("python-"), name.removeprefix("py"), name.removesuffix("-py"),
            name.removesuffix("-python")}


def group(facts: dict, findings: list[Finding]) -> list[Finding]:
    """``findings`` with each follower's fix moved into its root cause's one fix."""
    out = list(findings)
    for root in [f for f in findings if f.id.endswith(".duplicate-install") and f.is_problem]:
        members = _family_of(root)
        followers = [f for f in out if _follows(f, root, members)]
        if not followers:
            continue
        merged = _fold(facts, root, followers)
        keep = _kept(merged)
        note = (f"Follows from {root.id} ({', '.join(sorted(members & _installed_names(facts)))} installed together): "
                f"its one fix{f' (keep {keep} alone)' if keep else ''} resolves this too.")
        out = [merged if f is root else replace(f, fixes=tuple(x for x in f.fixes if x.kind not in (_INSTALL, _UNINSTALL)),
                                               hint=note) if f in followers else f for f in out]
    missing = {module: f for f in out if f.id == "pip.missing-requirement"
               for module in _module_names(f.title.split(" ", 1)[0])}
    return [replace(f, hint=f"Follows from pip.missing-requirement ({missing[_missing_module(f)].title}): "
                            f"{missing[_missing_module(f)].hint}", fixes=())
            if f.id != "pip.missing-requirement" and _missing_module(f) in missing else f for f in out]


def _installed_names(facts: dict) -> set[str]:
    return {canonicalize_name(d["name"]) for d in (facts.get("packages") or {}).get("distributions", ())}
