"""``<section>.import-failed``: the finding every framework section gives for a package
that fails to import, with its classified reason (payloads/_common.py ``classify``)
explained and the smallest fix. Pure: reads facts and the bundled tables only.
"""

from __future__ import annotations

import re

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

from tbdoctor import tables
from tbdoctor.compat import parse_version
from tbdoctor.findings import ERROR, Finding, Fix
from tbdoctor.rules import integrity
from tbdoctor.rules.common import pip_install, wanted
from tbdoctor.rules.stack import explained, version_of

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
