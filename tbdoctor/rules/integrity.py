"""Installed-file integrity (``<section>.incomplete-install``, ``<section>.files-modified``):
files a distribution's RECORD lists that are missing on disk, or (hashed with -v or
after a failed import) differ from it. Pure."""

from __future__ import annotations

from tbdoctor.findings import ERROR, WARNING, Finding
from tbdoctor.rules.common import checked, pip_install

# Distribution -> (report section, facts key of the probe that imports it).
_OWNERS = {"torch": ("torch", "torch"), "tensorboardx": ("tensorboardx", "tensorboardx"),
           "tensorboard": ("tensorboard", "tensorboard"), "tb-nightly": ("tensorboard", "tensorboard"),
           "tensorboard-data-server": ("tensorboard", None), "tensorflow": ("tensorflow", "tensorflow"),
           "tensorflow-cpu": ("tensorflow", "tensorflow"), "tf-nightly": ("tensorflow", "tensorflow"),
           "jax": ("jax", "jax"), "jaxlib": ("jax", None), "numpy": ("numpy", None), "protobuf": ("numpy", None)}


def incomplete(facts: dict) -> list[Finding]:
    findings = []
    for name, result in sorted(checked(facts).items()):
        section, key = _OWNERS.get(name, ("pip", None))
        label = f"{result['name']} {result.get('version')}"
        fix = pip_install(facts, f"{result['name']}=={result.get('version')}", options=("--force-reinstall", "--no-deps"))
        error = ((facts.get(key) or {}).get("import_error") or {}) if key else {}
        failing = f" Its import fails with: {error['line']}" if error.get("line") else ""
        if result.get("missing_count"):
            more = result["missing_count"] - 1
            findings.append(Finding(
                f"{section}.incomplete-install", ERROR,
                f"{result['name']} is incomplete: {result['missing'][0]} listed in RECORD is missing"
                + (f" (and {more} more)" if more else ""),
                detail=f"{label}: {result['missing_count']} of the {result['files']} files its RECORD lists are not on "
                       f"disk (an interrupted install or uninstall, or files deleted by hand).{failing} Missing: "
                       + ", ".join(result["missing"][:10])
                       + (" (--quick looks for each folder RECORD lists; a full check for each file)"
                          if result.get("checked") == "folders" else ""),
                hint=f"Reinstall {result['name']} over the damaged files.", fixes=(fix,), section=section))
        elif result.get("changed_count"):
            findings.append(Finding(
                f"{section}.files-modified", WARNING,
                f"{result['name']}: {result['changed_count']} installed file(s) differ from RECORD, e.g. "
                f"{result['changed'][0]}",
                detail=f"{label}: the sha256 of these files is not the one pip recorded (edited by hand, or "
                       f"overwritten by another package).{failing} Changed: " + ", ".join(result["changed"][:10]),
                hint=f"Reinstall {result['name']} unless you changed them on purpose.", fixes=(fix,), section=section))
    return findings


RULES = (incomplete,)
