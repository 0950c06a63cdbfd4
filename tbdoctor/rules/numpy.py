"""Rules of the NumPy and protobuf section (numpy.*): versions, the protobuf
implementation, and the import sweep of packages that depend on NumPy (ABI
breaks, crashes, other failures). Pure."""

from __future__ import annotations

from dataclasses import replace

from tbdoctor.findings import INFO, OK, Finding
from tbdoctor.rules.common import import_failed


def versions(facts: dict) -> list[Finding]:
    n = facts.get("numpy")
    if n is None:
        return []
    if not n.get("numpy"):
        return [Finding("numpy.version", INFO, "NumPy is not installed")]
    swept = n.get("dependents") or []
    good = sum(1 for d in swept if d.get("ok"))
    skipped = (n.get("dependents_total") or 0) - len(swept) + sum(1 for d in swept if d.get("reason") == "not-run")
    detail = f"{good} of {len(swept)} installed packages that depend on NumPy import cleanly"
    detail += f" ({skipped} not checked: the sweep is bounded)." if skipped else "."
    findings = [Finding("numpy.version", OK, f"NumPy {n['numpy']}", detail=detail)]
    if n.get("numpy_import_error"):
        findings += import_failed(facts, "numpy", "numpy", n["numpy"], n["numpy_import_error"])
    return findings


def protobuf(facts: dict) -> list[Finding]:
    n = facts.get("numpy")
    if not n or not n.get("protobuf"):
        return []
    impl = n.get("protobuf_implementation") or "unknown implementation"
    if n.get("protobuf_import_error"):
        return import_failed(facts, "numpy", "protobuf", n["protobuf"], n["protobuf_import_error"])
    if impl == "python":
        why = " because PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION=python" if n.get("protobuf_env") == "python" else ""
        return [Finding("numpy.protobuf", INFO, f"protobuf {n['protobuf']} (pure-Python implementation{why}: slow)",
                        hint="Unset PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION once no package needs the workaround.")]
    return [Finding("numpy.protobuf", OK, f"protobuf {n['protobuf']} ({impl} implementation)")]


def dependents(facts: dict) -> list[Finding]:
    """Each package depending on NumPy that fails to import in its own process."""
    n = facts.get("numpy")
    if not n:
        return []
    findings = []
    for d in n.get("dependents") or ():
        if d.get("ok") is not False:
            continue
        error = {"reason": d.get("reason"), "line": d.get("line"), "traceback": d.get("traceback")}
        if d.get("reason") == "numpy-abi":
            found = import_failed(facts, "numpy", d["name"], d.get("version"), error, finding_id="numpy.abi-mismatch",
                                  what=f"import {', '.join(d['modules'])}")
            findings += [_abi_title(f, d, n) for f in found]
        else:
            findings += import_failed(facts, "numpy", d["name"], d.get("version"), error,
                                      what=f"import {', '.join(d['modules'])}")
    return findings


def _abi_title(f: Finding, d: dict, n: dict) -> Finding:
    major = str(n.get("numpy") or "").split(".")[0]
    other = "1.x" if major.isdigit() and int(major) >= 2 else "2.x"
    return replace(f, title=f"{d['name']} {d.get('version')} was compiled for NumPy {other} and cannot run with "
                            f"NumPy {n.get('numpy')}: {d.get('line')}")


RULES = (versions, protobuf, dependents)
