"""Rules over the framework stack as a whole, driven by data: package families
that must not be installed together (``checks/families.toml`` ->
``<section>.duplicate-install``) and known-bad version pairs
(``checks/known_bad.toml``). Also the helpers every framework section uses to
report an import failure. Pure: reads facts and the bundled tables only.
"""

from __future__ import annotations

import re

from packaging.requirements import Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

from tbdoctor import tables
from tbdoctor.compat import parse_version
from tbdoctor.findings import ERROR, Finding, Fix
from tbdoctor.rules import integrity
from tbdoctor.rules.common import broken_pins, installed, pip_install, pip_uninstall, requirements, wanted

# What each classified import-failure reason (payloads/_common.py) means.
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


def import_failed(facts: dict, section: str, package: str, version: str | None, error: dict,
                  what: str = "", finding_id: str = "") -> list[Finding]:
    """``<section>.import-failed`` (or ``finding_id``) for a classified failure, unless a known-bad
    pair already reports it."""
    reason = error.get("reason") or "other"
    if explained(facts, package, reason) or integrity.missing_files(facts, package):
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


RULES = (duplicate_families, known_bad_pairs)
