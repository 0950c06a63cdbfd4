"""What a plan would do to the installed distributions, and what it would break. Pure.

Input: the facts (the distributions as probed), the Plan, and what pip's
dry run said it would install. Output: the changes (install, upgrade,
downgrade, reinstall, remove) and the requirements of other installed
distributions that the result would violate and that hold today. The
requirement arithmetic is the pip rules' own (``rules.pip.dependency_problems``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from tbdoctor.plan import Plan, project_key
from tbdoctor.rules.pip import dependency_problems


@dataclass(frozen=True)
class Change:
    action: str  # install | upgrade | downgrade | reinstall | remove
    name: str
    old: str | None = None
    new: str | None = None


@dataclass
class Impact:
    changes: list[Change] = field(default_factory=list)
    breaks: list[str] = field(default_factory=list)  # one line per violated requirement


def _action(old: str | None, new: str) -> str:
    if old is None:
        return "install"
    try:
        a, b = Version(old), Version(new)
    except InvalidVersion:
        return "reinstall" if old == new else "upgrade"
    return "upgrade" if b > a else "downgrade" if b < a else "reinstall"


def _resolved_dist(item: dict) -> dict:
    """A distribution record (as the packages probe writes them) for one dry-run item."""
    return {"name": item["name"], "canonical": canonicalize_name(item["name"]), "version": item["version"],
            "location": None, "metadata_dir": None, "requires": list(item.get("requires") or ())}


def _problems(dists: list[dict], env: dict) -> dict[tuple[str, str], str]:
    missing, conflicts = dependency_problems({"packages": {"distributions": dists, "marker_environment": env}})
    found = {}
    for name, items in missing.items():
        for requirer, req, _ in items:
            found[(requirer["canonical"] or requirer["name"], name)] = (
                f"{requirer['name']} {requirer['version']} requires {req}, which would be removed")
    for name, items in conflicts.items():
        for requirer, req, dep in items:
            found[(requirer["canonical"] or requirer["name"], name)] = (
                f"{requirer['name']} {requirer['version']} requires {req}, "
                f"but {dep['name']} {dep['version']} would be installed")
    return found


def assess(facts: dict, plan: Plan, resolved: list[dict]) -> Impact:
    """``resolved``: what the dry runs would install, as {name, version, requires} dicts."""
    pkgs = facts.get("packages") or {}
    env = pkgs.get("marker_environment") or {}
    before = [dict(d, canonical=d.get("canonical") or canonicalize_name(d["name"])) for d in pkgs.get("distributions", ())]
    after = list(before)
    removed: dict[str, dict] = {}
    for name in sorted(plan.uninstalls):
        hit = next((d for d in after if d["canonical"] == name), None)
        if hit is not None:
            after.remove(hit)
            removed[name] = hit
    new_versions = {canonicalize_name(item["name"]): item for item in resolved}
    asked = {project_key(r) for r in plan.installs}
    changes = []
    for name, old in removed.items():
        if name in new_versions:
            continue  # replaced: reported below
        if name in asked:  # removed, then asked for again and already satisfied: pip reinstalls the same
            after.insert(0, old)
            changes.append(Change("reinstall", old["name"], old["version"], old["version"]))
        else:
            changes.append(Change("remove", old["name"], old["version"]))
    for name, item in new_versions.items():
        current = removed.get(name) or next((d for d in after if d["canonical"] == name), None)
        if current is not None and current in after:
            after.remove(current)
        after.insert(0, _resolved_dist(item))
        old = current["version"] if current else None
        changes.append(Change(_action(old, item["version"]), item["name"], old, item["version"]))
    today = _problems(before, env)
    broken = _problems(after, env)
    breaks = [text for key, text in sorted(broken.items()) if key not in today]
    if "pip" in removed and not any(d["canonical"] == "pip" for d in after):
        breaks.append(f"pip {removed['pip']['version']} would be removed, and with it what applies the plan and rolls it back")
    return Impact(changes, breaks)
