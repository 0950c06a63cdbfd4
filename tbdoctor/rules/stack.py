"""Rules over the framework stack as a whole, driven by data: package families
that must not be installed together (``checks/families.toml`` ->
``<section>.duplicate-install``) and known-bad version pairs
(``checks/known_bad.toml``). Pure: reads facts and the bundled tables only.
"""

from __future__ import annotations

import re

from packaging.utils import canonicalize_name

from tbdoctor import tables
from tbdoctor.findings import ERROR, Finding
from tbdoctor.rules.common import broken_pins, fired_pairs, installed, pip_install, pip_uninstall, requirements

def known_bad_pairs(facts: dict) -> list[Finding]:
    findings = []
    for pair, versions in fired_pairs(facts):
        title = re.sub(r"\{([\w.-]+)\}", lambda m: versions.get(m.group(1), m.group(0)), pair["title"])
        broken = [b for req in pair["fix"] for b in broken_pins(facts, req)]
        if broken and pair.get("fallback") and not any(broken_pins(facts, req) for req in pair["fallback"]):
            # the usual fix would break another framework's pin: give the one that does not
            fix = pip_install(facts, *pair["fallback"])
            hint = (f"Install {' '.join(pair['fallback'])} ({' '.join(pair['fix'])} would break the pin: "
                    f"{'; '.join(broken)})")
        else:
            fix = pip_install(facts, *pair["fix"])
            hint = f"Install {' '.join(pair['fix'])}"
            if pair.get("alternative"):
                hint += f"; {pair['alternative']}"
        findings.append(Finding(pair["id"], pair["status"], title, detail=f"{pair['detail']} (source: {pair['source']})",
                                hint=hint + ".", fixes=(fix,), subject=canonicalize_name(next(iter(pair["when"])))))
    return findings


def _required_members(facts: dict, present: dict[str, dict]) -> set[str]:
    """Members that another present member requires (a dependency, not a duplicate)."""
    needed = set()
    for dist in present.values():
        for req in requirements(facts, dist):
            if canonicalize_name(req.name) in present:
                needed.add(canonicalize_name(req.name))
    return needed


def duplicate_families(facts: dict) -> list[Finding]:
    """Any family of ``checks/families.toml`` with two or more members installed."""
    if not facts.get("packages"):
        return []
    have = installed(facts)
    findings = []
    for family in tables.load("families")["family"]:
        present = {canonicalize_name(m): have[canonicalize_name(m)] for m in family["members"]
                   if canonicalize_name(m) in have}
        rivals = [name for name in present if name not in _required_members(facts, present)]
        if len(rivals) < 2:
            continue
        keep = rivals[0]  # members are listed in order of preference; spelled as users type them
        listing = ", ".join(f"{n} {present[n]['version']}" for n in present)
        findings.append(Finding(
            f"{family['section']}.duplicate-install", ERROR,
            f"{' and '.join(rivals)} are installed together: they overwrite each other's `{family['module']}` package",
            detail=f"Installed: {listing}. Each writes the same `{family['module']}/` folder, so its files belong to "
                   f"whichever was installed last, and uninstalling one breaks the other. (source: {family['source']})",
            hint=f"Uninstall all of them, then install exactly one: {keep}=={present[keep]['version']}.",
            fixes=(pip_uninstall(facts, *present), pip_install(facts, f"{keep}=={present[keep]['version']}"))))
    return findings


RULES = (duplicate_families, known_bad_pairs)
