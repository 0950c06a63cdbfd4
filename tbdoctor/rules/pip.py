"""Rules of the pip section (pip.*): pip itself, its configuration, and the
consistency of the installed distributions (what ``pip check`` reports, computed
from the metadata with ``packaging``). Pure."""

from __future__ import annotations

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from tbdoctor.findings import ERROR, INFO, OK, WARNING, Finding, Fix, quote_command
from tbdoctor.rules import ownership
from tbdoctor.rules.common import (installed, pip_install, pip_uninstall, remove_folder, requirements, target_python,
                                   wanted)

_CONFIG_KEYS = ("index-url", "extra-index-url", "find-links", "constraint", "requirement", "trusted-host", "no-index")


def pip_present(facts: dict) -> list[Finding]:
    py = facts.get("python")
    if not py:
        return []
    pip = py.get("pip") or {}
    if pip.get("installed"):
        return [Finding("pip.installed", OK, f"pip {pip['version']}")]
    if py.get("env_kind") == "uv":
        return [Finding("pip.installed", INFO, "pip is not installed (normal in a uv-created venv; use `uv pip`)",
                        detail="Package facts come from the installed metadata.")]
    return [Finding("pip.installed", WARNING, "pip is not installed in this environment",
                    detail="Package facts come from the installed metadata; `tbdoctor fix` needs pip.",
                    hint="Install it with ensurepip.",
                    fixes=(Fix("pip-bootstrap", quote_command([target_python(facts), "-m", "ensurepip", "--upgrade"])),))]


def pip_config(facts: dict) -> list[Finding]:
    pip = ((facts.get("python") or {}).get("pip")) or {}
    if not pip.get("installed"):
        return []
    if pip.get("config_error"):
        return [Finding("pip.config", WARNING, "pip's configuration could not be read",
                        detail=pip["config_error"], hint="Check your pip.conf / pip.ini: python -m pip config debug")]
    relevant = {k: v for k, v in (pip.get("config") or {}).items() if k.split(".", 1)[-1] in _CONFIG_KEYS}
    env = {k: v for k, v in ((facts.get("python") or {}).get("environ") or {}).items()
           if k in ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS", "PIP_CONSTRAINT", "PIP_NO_INDEX")}
    if not relevant and not env:
        return [Finding("pip.config", INFO, "pip uses its default index (no index, find-links or constraint configured)")]
    lines = [f"{k} = {v}" for k, v in sorted(relevant.items())] + [f"{k}={v}" for k, v in sorted(env.items())]
    return [Finding("pip.config", INFO, "pip configuration in force: " + "; ".join(lines))]


def dependency_problems(facts: dict) -> tuple[dict[str, list], dict[str, list]]:
    """(missing, conflicts): requirement name -> [(requirer dist, Requirement, installed dist or None)]."""
    have = installed(facts)
    missing: dict[str, list] = {}
    conflicts: dict[str, list] = {}
    for dist in have.values():
        for req in requirements(facts, dist):
            name = canonicalize_name(req.name)
            dep = have.get(name)
            if dep is None:
                missing.setdefault(name, []).append((dist, req, None))
                continue
            try:
                ok = req.specifier.contains(Version(dep["version"]), prereleases=True)
            except InvalidVersion:
                continue
            if not ok:
                conflicts.setdefault(name, []).append((dist, req, dep))
    return missing, conflicts


def consistency(facts: dict) -> list[Finding]:
    if not facts.get("packages"):
        return []
    missing, conflicts = dependency_problems(facts)
    findings = []
    for name, items in sorted(missing.items()):
        who = ", ".join(f"{d['name']} {d['version']} requires {r}" for d, r, _ in items)
        want = wanted(facts, name)
        findings.append(Finding(
            "pip.missing-requirement", ERROR, f"{items[0][1].name} is required but not installed",
            detail=who, hint=f"Install {want}.", fixes=(pip_install(facts, want),), subject=name))
    for name, items in sorted(conflicts.items()):
        dep = items[0][2]
        who = "; ".join(f"{d['name']} {d['version']} requires {r}" for d, r, _ in items)
        want = wanted(facts, name)
        findings.append(Finding(
            "pip.version-conflict", ERROR, f"{dep['name']} {dep['version']} does not satisfy {items[0][0]['name']}",
            detail=f"{who}, but {dep['name']} {dep['version']} is installed.",
            hint=f"Install a version of {dep['name']} that every package accepts: {want}.",
            fixes=(pip_install(facts, want),), subject=name))
    if not findings:
        count = len(installed(facts))
        findings.append(Finding("pip.consistency", OK, f"{count} distributions, all requirements satisfied"))
    return findings


def _keeper(group: list[dict]) -> dict:
    try:
        return max(group, key=lambda d: Version(d["version"]))
    except InvalidVersion:
        return group[0]


def duplicates(facts: dict) -> list[Finding]:
    pkgs = facts.get("packages") or {}
    groups: dict[str, list[dict]] = {}
    for dist in pkgs.get("distributions", ()):
        groups.setdefault(canonicalize_name(dist["name"]), []).append(dist)
    findings = []
    for name, group in sorted(groups.items()):
        if len(group) < 2:
            continue
        first = group[0]
        seen = "; ".join(f"{d['version']} in {d['metadata_dir']}" for d in group)
        title = f"{first['name']} is installed {len(group)} times: " + ", ".join(d["version"] for d in group)
        owners = [ownership.owner(facts, d["metadata_dir"]) for d in group]
        if owners[0] and all(o == owners[0] for o in owners):
            continue  # one OS or conda package ships both folders (e.g. a .dist-info and an .egg-info)
        if len({d["location"] for d in group}) == 1:
            keep = _keeper(group)
            stale = [d["metadata_dir"] for d in group if d is not keep and not ownership.owner(facts, d["metadata_dir"])]
            findings.append(Finding(
                "pip.duplicate-distribution", ERROR, title,
                detail=f"{seen}. Several metadata folders in one site-packages: an interrupted or overlapping "
                       "install left files of different versions mixed.",
                hint=f"Remove the stale metadata, then reinstall {keep['name']} {keep['version']} over it.",
                fixes=tuple(remove_folder(facts, path) for path in stale)
                + (pip_install(facts, f"{keep['name']}=={keep['version']}", options=("--force-reinstall", "--no-deps")),),
                subject=name))
        else:
            findings.append(Finding(
                "pip.duplicate-distribution", WARNING, title,
                detail=f"{seen}. Python imports the first on sys.path, {first['version']} from {first['location']}.",
                hint=f"Uninstall the copy you do not want; `pip uninstall` removes the first one ({first['location']}).",
                fixes=(pip_uninstall(facts, first["name"]),), subject=name))
    for path in pkgs.get("broken_metadata", ()):
        who = ownership.owner(facts, path)
        findings.append(Finding("pip.broken-metadata", WARNING, f"Unreadable distribution metadata: {path}",
                                detail="A .dist-info or .egg-info folder without a Name (a half-removed package).",
                                hint=f"It belongs to {ownership.describe(who)}: reinstall that package." if who else
                                "Delete the folder after checking what it belonged to.",
                                fixes=(ownership.reinstall(facts, who) if who else remove_folder(facts, path),)))
    return findings


RULES = (pip_present, pip_config, consistency, duplicates)
