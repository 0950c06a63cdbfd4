"""Helpers shared by rules: reading facts, building fix actions, and the
``<section>.import-failed`` finding every framework section gives. Pure."""

from __future__ import annotations

import functools
import re

from packaging.markers import InvalidMarker, UndefinedComparison, UndefinedEnvironmentName
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from tbdoctor import tables
from tbdoctor.compat import parse_version
from tbdoctor.findings import ERROR, Finding, Fix, quote_command


def fix_packages(fix: Fix) -> list[str]:
    """The canonical project names of a fix's packages (requirements or bare names)."""
    names = []
    for raw in fix.packages:
        try:
            names.append(canonicalize_name(Requirement(raw).name))
        except InvalidRequirement:
            names.append(canonicalize_name(raw))
    return names


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


def pip_install(facts: dict, *requirements: str, options: tuple[str, ...] = ()) -> Fix:
    argv = _pip_argv(facts, "install") + list(options) + list(requirements)
    return Fix("pip-install", quote_command(argv), tuple(requirements), tuple(options))


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


# Facts read across sections: RECORD checks, installed versions, known-bad pairs.

def checked(facts: dict) -> dict[str, dict]:
    """Canonical name -> RECORD comparison, from every probe that made one (a hashed one wins)."""
    found: dict[str, dict] = {}
    sources = [((facts.get("packages") or {}).get("integrity") or {}).values()]
    sources += [[(facts.get(key) or {}).get("integrity")] for key in ("torch", "tensorboardx", "tensorboard", "tensorflow")]
    sources += [[d.get("integrity") for d in (facts.get("numpy") or {}).get("dependents") or ()]]
    for source in sources:
        for result in source:
            if not isinstance(result, dict) or not result.get("name"):
                continue
            name = canonicalize_name(result["name"])
            if name not in found or (result.get("hashed") and not found[name].get("hashed")):
                found[name] = result
    return found


def missing_files(facts: dict, package: str) -> bool:
    """Whether RECORD lists files of ``package`` that are not on disk."""
    return bool((checked(facts).get(canonicalize_name(package)) or {}).get("missing_count"))


def version_of(facts: dict, name: str) -> Version | None:
    dist = installed(facts).get(canonicalize_name(name))
    return parse_version(dist["version"]) if dist else None


def _matches(facts: dict, when: dict) -> dict[str, str] | None:
    """Installed versions by name when every package of ``when`` matches, else None."""
    seen = {}
    for name, spec in when.items():
        version = version_of(facts, name)
        try:
            if version is None or not SpecifierSet(spec).contains(version, prereleases=True):
                return None
        except InvalidSpecifier:
            return None
        seen[name] = str(version)
    return seen


def fired_pairs(facts: dict) -> list[tuple[dict, dict[str, str]]]:
    """The known-bad pairs that apply to the installed versions: (entry, versions)."""
    if not facts.get("packages"):
        return []
    found = []
    for pair in tables.load("known_bad")["pair"]:
        versions = _matches(facts, pair["when"])
        if versions is not None:
            found.append((pair, versions))
    return found


def explained(facts: dict, package: str, reason: str | None) -> bool:
    """True when a known-bad pair involving ``package`` already reports a failure of this reason."""
    name = canonicalize_name(package)
    return any(pair.get("explains") == reason and name in {canonicalize_name(n) for n in pair["when"]}
               for pair, _ in fired_pairs(facts))


# ``<section>.import-failed``: every framework section's finding for a package that fails to import.

# What each classified import-failure reason means.
REASONS = {
    "numpy-abi": "it was built against the other major version of NumPy (a binary ABI break)",
    "numpy-removed-alias": "it uses a NumPy alias that NumPy 2 removed",
    "numpy-array-scalar": "NumPy >= 2.4 no longer converts a 1-element array to a Python float",
    "protobuf-gencode-too-old": "its generated protobuf code is older than the installed protobuf accepts",
    "protobuf-runtime-too-old": "the installed protobuf is older than its generated code needs",
    "pkg-resources-missing": "it imports pkg_resources, which setuptools >= 82 no longer ships",
    "distutils-version": "it uses distutils.version, which setuptools >= 59.6 no longer exposes",
    "cuda-driver-too-old": "the NVIDIA driver is older than this CUDA build needs",
    "undefined-symbol": "a shared library of another version was loaded first (check LD_LIBRARY_PATH)",
    "missing-shared-library": "a shared library it needs cannot be found",
    "duplicate-plugins": "two TensorBoard distributions register the same plugins",
    "missing-module": "a module it imports is not installed",
    "crashed": "the import crashed the interpreter",
    "timeout": "the import did not finish",
    "hang": "the import blocks at that line (no CPU time, no I/O) and would never finish",
    "other": "the import raised an error",
}
_MISSING_MODULE = re.compile(r"No module named '([\w.]+)'")


def import_failed(facts: dict, section: str, package: str, version: str | None, error: dict,
                  what: str = "", finding_id: str = "") -> list[Finding]:
    """``<section>.import-failed`` (or ``finding_id``) for a classified failure, unless a known-bad
    pair already reports it."""
    reason = error.get("reason") or "other"
    if explained(facts, package, reason) or missing_files(facts, package):
        return []  # reported with its cause (known-bad pair, <section>.incomplete-install)
    label = f"{package} {version}" if version else package
    hint, fixes = _advice(facts, package, version, error)
    why = REASONS.get(reason, REASONS["other"])
    if reason == "other" and what and not what.startswith("import"):
        why = f"{what} raised an error (the import works)"
    return [Finding(
        finding_id or f"{section}.import-failed", ERROR, f"{what or ('import ' + package)} fails ({label}): {error.get('line') or reason}",
        detail=f"Why: {why}.", hint=hint, fixes=fixes,
        section=section, verbose_detail=error.get("traceback") or "")]


def _numpy2_series(facts: dict, package: str) -> str | None:
    """``name>=first,<next minor`` (and what every requirer accepts) for a package whose first
    release built for NumPy 2 ``checks/numpy2.toml`` knows; None when it is not known."""
    entry = tables.load("numpy2")["first"].get(canonicalize_name(package))
    if not entry:
        return None
    first = Version(entry["version"])
    spec = SpecifierSet(f">={first},<{first.major}.{first.minor + 1}") & Requirement(wanted(facts, package)).specifier
    return f"{package}{spec}"


def _advice(facts: dict, package: str, version: str | None, error: dict) -> tuple[str, tuple[Fix, ...]]:
    reason = error.get("reason") or "other"
    numpy = version_of(facts, "numpy") or parse_version((facts.get("numpy") or {}).get("numpy"))  # --only numpy
    if reason == "numpy-abi" and numpy is not None and numpy.major >= 2:
        smallest = _numpy2_series(facts, package)
        if smallest:
            return (f"Install {smallest}: the first release series of {package} built for NumPy 2 (the smallest "
                    f"change; source: {tables.load('numpy2')['first'][canonicalize_name(package)]['source']}).",
                    (pip_install(facts, smallest),))
        return (f"Upgrade {package} to a release built for NumPy 2 (or pin numpy<2 if none exists).",
                (pip_install(facts, package, options=("--upgrade",)),))
    if reason == "numpy-abi":
        return f"{package} needs NumPy 2: upgrade numpy (or install an older {package} built for NumPy 1).", \
               (pip_install(facts, "numpy>=2"),)
    if reason == "protobuf-runtime-too-old":
        want = wanted(facts, "protobuf")
        return (f"Install a protobuf that every package accepts ({want}); if TensorFlow pins it lower, install "
                "the TensorBoard that matches TensorFlow instead.", (pip_install(facts, want),))
    if reason == "protobuf-gencode-too-old":
        return (f"Upgrade {package} (its generated code predates protobuf 4), or pin protobuf<=3.20.3.",
                (pip_install(facts, package, options=("--upgrade",)),))
    if reason == "numpy-array-scalar":  # the known-bad pair says this when the package facts are there
        return (f"Upgrade {package} to a release that converts array scalars itself (tensorboardX >= 2.6.2), "
                "or pin numpy<2.4.", (pip_install(facts, package, options=("--upgrade",)),))
    if reason == "pkg-resources-missing":
        return f"Upgrade {package}, or restore pkg_resources with setuptools<82.", (pip_install(facts, "setuptools<82"),)
    if reason == "missing-module":
        match = _MISSING_MODULE.search(error.get("line") or "")
        module = match.group(1).split(".")[0] if match else "the missing module"
        return f"Install the package that provides `{module}` into this environment.", ()
    if reason in ("undefined-symbol", "missing-shared-library"):
        env = ((facts.get("python") or {}).get("environ") or {})
        fixes = (Fix("env", "unset LD_LIBRARY_PATH"),) if env.get("LD_LIBRARY_PATH") else ()
        return ("Libraries from LD_LIBRARY_PATH or a system CUDA can shadow the wheel's own; remove them from the "
                f"loader path for this environment, or reinstall {package} in a clean venv.", fixes)
    if reason == "hang":
        return (f"It waits there for a lock, a network peer or input; run `python -X faulthandler -c 'import {package}'`"
                " and press Ctrl-C to see the whole stack.", ())
    if reason in ("crashed", "timeout") and version:
        return (f"Run `python -c 'import {package}'` to see it happen; a reinstall replaces damaged files.",
                (pip_install(facts, f"{package}=={version}", options=("--force-reinstall", "--no-deps")),))
    return "Run the import yourself to see the whole error (or `tbdoctor check -v`).", ()
