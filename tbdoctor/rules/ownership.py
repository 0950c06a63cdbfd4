"""Files that belong to the OS package manager or conda are not pip's to change. Pure.

The packages probe records which metadata folders dpkg, rpm or conda own
(``packages.owners``). After the rules ran, a pip fix that would remove or
overwrite an owned distribution is replaced by its owner's own command, and
in an externally-managed (PEP 668) interpreter, where pip refuses to install,
every pip fix that ``check`` shows is replaced by a virtual environment
(``tbdoctor setup``); ``fix`` refuses such an interpreter itself unless overridden.
"""

from __future__ import annotations

from dataclasses import replace

from packaging.requirements import InvalidRequirement, Requirement

from tbdoctor.compat import parse_version
from tbdoctor.findings import Finding, Fix, quote_command
from tbdoctor.plan import command_options
from tbdoctor.rules.common import fix_packages, installed, manual, pip_install, pip_uninstall, target_python

_PIP = ("pip-install", "pip-uninstall")


def owner(facts: dict, metadata_dir: str | None) -> dict | None:
    """{manager, package} of the package manager that owns ``metadata_dir``, or None."""
    return ((facts.get("packages") or {}).get("owners") or {}).get(metadata_dir or "")


def reinstall(facts: dict, who: dict) -> Fix:
    """The owner's own command that reinstalls its package (repairs its files)."""
    if who["manager"] == "conda":
        prefix = (facts.get("python") or {}).get("prefix") or "PREFIX"
        return manual(quote_command(["conda", "install", "-p", prefix, "--force-reinstall", who["package"]]))
    if who["manager"] == "rpm":
        return manual(f"sudo dnf reinstall {who['package']}")
    return manual(f"sudo apt-get install --reinstall {who['package']}")


def _instead(facts: dict, fix: Fix, raw: str, dist: dict, who: dict) -> Fix:
    """What to run instead of pip for the owned ``dist`` that ``fix`` names as ``raw``."""
    prefix = (facts.get("python") or {}).get("prefix") or "PREFIX"
    try:
        spec = Requirement(raw).specifier if fix.kind == "pip-install" else None
    except InvalidRequirement:
        spec = None
    if who["manager"] == "conda":
        if fix.kind == "pip-uninstall":
            return manual(quote_command(["conda", "remove", "-p", prefix, who["package"]]))
        return manual(quote_command(["conda", "install", "-p", prefix, f"{who['package']}{spec}"])) if spec \
            else reinstall(facts, who)
    version = parse_version(dist["version"])
    same = spec is not None and version is not None and spec.contains(version, prereleases=True)
    if same:
        return reinstall(facts, who)
    return manual(f"tbdoctor setup ./tbdoctor-env --python {target_python(facts)}")


def describe(who: dict) -> str:
    return f"{who['manager']} package {who['package']}"


def guard(facts: dict, findings: list[Finding]) -> list[Finding]:
    """``findings`` whose pip fixes leave owned files and PEP 668 interpreters alone."""
    py = facts.get("python") or {}
    if py.get("externally_managed") and not facts.get("for_fix"):  # fix refuses, or the user overrides
        python = target_python(facts)
        setup = manual(f"tbdoctor setup ./tbdoctor-env --python {python}")
        return [replace(f, fixes=tuple(x for x in f.fixes if x.kind not in _PIP) + (setup,), hint=(
            f"{f.hint} {python} is externally managed (PEP 668): pip may not change it; use the system's package "
            "manager, or work in a virtual environment (tbdoctor setup).").strip())
                if any(x.kind in _PIP for x in f.fixes) else f for f in findings]
    have = installed(facts)
    out = []
    for f in findings:
        fixes, owned = [], {}
        for fix in f.fixes:
            pairs = list(zip(fix.packages, fix_packages(fix))) if fix.kind in _PIP else []
            mine = [(raw, name) for raw, name in pairs if name in have and owner(facts, have[name].get("metadata_dir"))]
            if not mine:
                fixes.append(fix)
                continue
            rest = [raw for raw, name in pairs if (raw, name) not in mine]
            if rest:
                fixes.append(pip_install(facts, *rest, options=command_options(fix)) if fix.kind == "pip-install"
                             else pip_uninstall(facts, *rest))
            for raw, name in mine:
                who = owned[name] = owner(facts, have[name]["metadata_dir"])
                fixes.append(_instead(facts, fix, raw, have[name], who))
        if not owned:
            out.append(f)
            continue
        listing = ", ".join(f"{name} ({describe(who)})" for name, who in owned.items())
        out.append(replace(f, fixes=tuple(dict.fromkeys(fixes)), hint=(
            f"{f.hint} Owned by a package manager, not pip: {listing}; change it with that manager's own commands "
            "(or in a virtual environment: tbdoctor setup).").strip()))
    return out
