"""Helpers shared by rules: reading facts and building fix actions. Pure."""

from __future__ import annotations

import functools

from packaging.markers import InvalidMarker, UndefinedComparison, UndefinedEnvironmentName
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from tbdoctor.findings import Fix, quote_command


def target_python(facts: dict) -> str:
    return (facts.get("target") or {}).get("python") or "python"


def installed(facts: dict) -> dict[str, dict]:
    """Canonical name -> the distribution import and pip see (the first on sys.path)."""
    found: dict[str, dict] = {}
    for dist in (facts.get("packages") or {}).get("distributions", ()):
        found.setdefault(canonicalize_name(dist["name"]), dist)
    return found


def requirements(facts: dict, dist: dict):
    """The Requirements of ``dist`` that apply in the target (markers evaluated, extras not requested)."""
    env = tuple(sorted(((facts.get("packages") or {}).get("marker_environment") or {}).items()))
    for raw in dist.get("requires") or ():
        req = _applicable(raw, env)
        if req is not None:
            yield req


@functools.lru_cache(maxsize=None)
def _applicable(raw: str, env: tuple) -> Requirement | None:
    """``raw`` parsed, or None when it is invalid or its marker is false (several rules ask; parse once)."""
    try:
        req = Requirement(raw)
        if req.marker is not None and not req.marker.evaluate(dict(env, extra="")):
            return None
    except (InvalidRequirement, InvalidMarker, UndefinedComparison, UndefinedEnvironmentName):
        return None
    return req


def requirers(facts: dict, name: str) -> list[tuple[dict, Requirement]]:
    """(installed distribution, its requirement) for each distribution that requires ``name``."""
    key = canonicalize_name(name)
    return [(dist, req) for dist in installed(facts).values() for req in requirements(facts, dist)
            if canonicalize_name(req.name) == key]


def wanted(facts: dict, name: str, ignore: frozenset[str] = frozenset()) -> str:
    """A requirement for ``name`` that every installed distribution needing it accepts
    (except the distributions named in ``ignore``, canonical names)."""
    spec = SpecifierSet()
    display = name
    for dist in installed(facts).values():
        if canonicalize_name(dist["name"]) in ignore:
            continue
        for req in requirements(facts, dist):
            if canonicalize_name(req.name) == canonicalize_name(name):
                spec &= req.specifier
                display = req.name
    return f"{display}{spec}"


def broken_pins(facts: dict, requirement: str) -> list[str]:
    """"tensorflow 2.20.0 requires tensorboard~=2.20.0" for each installed distribution whose
    requirement on the same package no version can satisfy together with ``requirement``."""
    try:
        wanted_req = Requirement(requirement)
    except InvalidRequirement:
        return []
    name = canonicalize_name(wanted_req.name)
    found = []
    for dist in installed(facts).values():
        if canonicalize_name(dist["name"]) == name:
            continue
        for req in requirements(facts, dist):
            if canonicalize_name(req.name) == name and not _overlap(wanted_req.specifier, req.specifier):
                found.append(f"{dist['name']} {dist['version']} requires {req}")
    return found


def _overlap(a: SpecifierSet, b: SpecifierSet) -> bool:
    """Whether some version satisfies both sets. packaging has no intersection test, so this
    tries the versions the specifiers name and their next releases (hand-written, a heuristic
    that is exact for the bounds and ~= / ==X.* pins that pins use)."""
    points = []
    for spec in [*a, *b]:
        try:
            version = Version(spec.version.replace(".*", ""))
        except InvalidVersion:
            continue
        rel = version.release
        points += [version, Version(".".join(map(str, (*rel[:-1], rel[-1] + 1)))),
                   Version(".".join(map(str, (*rel, 1))))]
    if not points:
        return True
    return any(a.contains(p, prereleases=True) and b.contains(p, prereleases=True) for p in points)


def _pip_argv(facts: dict, verb: str) -> list[str]:
    python = target_python(facts)
    pip = (facts.get("python") or {}).get("pip") or {}
    if pip.get("installed") is False and (facts.get("python") or {}).get("env_kind") == "uv":
        return ["uv", "pip", verb, "--python", python]
    return [python, "-m", "pip", verb]


def fix_projects(fix: Fix) -> list[str]:
    """The canonical project names of ``fix.packages`` (requirements or bare names), in order."""
    names = []
    for raw in fix.packages:
        try:
            names.append(canonicalize_name(Requirement(raw).name))
        except InvalidRequirement:
            names.append(canonicalize_name(raw))
    return names


def pip_install(facts: dict, *requirements: str, options: tuple[str, ...] = ()) -> Fix:
    argv = _pip_argv(facts, "install") + list(options) + list(requirements)
    return Fix("pip-install", quote_command(argv), tuple(requirements))


def pip_uninstall(facts: dict, *names: str) -> Fix:
    argv = _pip_argv(facts, "uninstall")
    if argv[0] != "uv":
        argv.append("-y")
    return Fix("pip-uninstall", quote_command(argv + list(names)), tuple(names))


def manual(command: str) -> Fix:
    return Fix("manual", command)


def remove_folder(facts: dict, path: str) -> Fix:
    """A manual step deleting ``path``, in the target platform's shell."""
    if (facts.get("python") or {}).get("platform") == "win32":
        return manual(f'rmdir /S /Q "{path}"')
    return manual(quote_command(["rm", "-r", path]))
