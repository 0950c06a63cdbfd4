"""Rules of the Python section (python.*): interpreter, environment kind, EOL,
PEP 668, PYTHONPATH, user site, shadowing folders and .pth files that raise. Pure."""

from __future__ import annotations

import datetime

from tbdoctor import tables
from tbdoctor.findings import ERROR, INFO, OK, WARNING, Finding, Fix, quote_command
from tbdoctor.rules.common import manual, pip_install

_KIND_NAMES = {"venv": "venv", "virtualenv": "virtualenv", "uv": "uv-created venv",
               "conda": "conda environment", "pyenv": "pyenv interpreter", "system": "system interpreter"}


def interpreter(facts: dict) -> list[Finding]:
    py = facts.get("python")
    if not py:
        return []
    kind = _KIND_NAMES.get(py["env_kind"], py["env_kind"])
    return [Finding(
        "python.interpreter", OK,
        f"Python {py['version']} ({py['implementation']}, {py['bits']}-bit), {kind}",
        detail=f"executable {py['executable']}; prefix {py['prefix']}; base prefix {py['base_prefix']}; "
               f"recognised by {py['env_evidence']}",
    )]


def bitness(facts: dict) -> list[Finding]:
    py = facts.get("python")
    if not py or py["bits"] == 64:
        return []
    return [Finding("python.32-bit", ERROR, f"32-bit Python {py['version']}",
                    detail="PyTorch, TensorFlow and JAX publish 64-bit wheels only.",
                    hint="Install a 64-bit Python and create the environment with it.")]


def end_of_life(facts: dict) -> list[Finding]:
    py = facts.get("python")
    if not py:
        return []
    major_minor = ".".join(map(str, py["version_info"][:2]))
    eol = tables.load("python")["eol"].get(major_minor)
    if eol is None:
        return [Finding("python.eol", INFO, f"Python {major_minor}: end-of-life date unknown to this tbdoctor")]
    today = datetime.date.fromisoformat(facts.get("collected_at") or datetime.date.today().isoformat())
    eol_date = datetime.date.fromisoformat(eol)
    if eol_date <= today:
        return [Finding("python.eol", WARNING, f"Python {major_minor} reached end of life on {eol}",
                        detail="It gets no security fixes, and new framework releases drop it "
                               "(torch >= 2.9 needs 3.10+, TensorFlow 2.21 needs 3.10+).",
                        hint="Create a new environment with a supported Python (3.11 or newer): tbdoctor setup")]
    if (eol_date - today).days <= 180:
        return [Finding("python.eol", INFO, f"Python {major_minor} reaches end of life on {eol}")]
    return [Finding("python.eol", OK, f"Python {major_minor} is supported until {eol}")]


def externally_managed(facts: dict) -> list[Finding]:
    py = facts.get("python")
    if not py or not py.get("externally_managed"):
        return []
    return [Finding(
        "python.externally-managed", INFO,
        "Externally managed interpreter (PEP 668): pip refuses to install into it",
        detail=f"marker {py['externally_managed']}",
        hint="Use a virtual environment for ML work: tbdoctor setup ./venv",
    )]


def pythonpath(facts: dict) -> list[Finding]:
    py = facts.get("python")
    value = ((py or {}).get("environ") or {}).get("PYTHONPATH")
    if not value:
        return []
    return [Finding(
        "python.pythonpath", WARNING, "PYTHONPATH is set: its folders come before the environment's packages",
        detail=f"PYTHONPATH={value}",
        hint="Unset it unless you rely on it (it often points at another environment's site-packages).",
        fixes=(Fix("env", "unset PYTHONPATH"),),
    )]


def _user_site_dists(facts: dict, user_site: str) -> list[dict]:
    return [d for d in (facts.get("packages") or {}).get("distributions", ())
            if d.get("location") and d["location"].rstrip("/\\") == user_site.rstrip("/\\")]


def user_site(facts: dict) -> list[Finding]:
    py = facts.get("python")
    site = (py or {}).get("user_site") or {}
    if not site.get("on_sys_path") or not site.get("exists"):
        return []
    in_user = _user_site_dists(facts, site["path"])
    if not in_user:
        return [Finding("python.user-site", INFO, f"User site-packages is enabled: {site['path']}")]
    others = {d["canonical"] for d in (facts.get("packages") or {}).get("distributions", ())
              if d.get("location") != site["path"]}
    clashing = sorted(f"{d['name']} {d['version']}" for d in in_user if d["canonical"] in others)
    if not clashing:
        return [Finding("python.user-site", INFO,
                        f"User site-packages holds {len(in_user)} distribution(s) visible to this interpreter",
                        detail=site["path"])]
    return [Finding(
        "python.user-site", WARNING,
        f"User site-packages shadows the environment: {', '.join(clashing[:5])}"
        + (" ..." if len(clashing) > 5 else ""),
        detail=f"{site['path']} comes before the environment's site-packages on sys.path.",
        hint="Remove them from the user site, or disable it for this environment.",
        fixes=(Fix("env", "export PYTHONNOUSERSITE=1"),),
    )]


def shadowing(facts: dict) -> list[Finding]:
    pkgs = facts.get("packages")
    if not pkgs:
        return []
    findings = []
    for item in pkgs.get("shadowed_modules", ()):
        where = "the current directory" if item["via"] == "current directory" else "an earlier sys.path entry"
        findings.append(Finding(
            "python.shadowed-module", ERROR if item["via"] == "sys.path" else WARNING,
            f"`import {item['module']}` loads {item['shadowed_by']}, not {item['distribution']} {item['version']}",
            detail=f"{item['distribution']} is installed in {item['installed_at']}, but {where} provides "
                   f"a module or folder named {item['module']!r} first.",
            hint=f"Rename or move {item['shadowed_by']}, or run Python from another directory.",
        ))
    return findings


def broken_pth(facts: dict) -> list[Finding]:
    """A .pth file whose import line raises at every interpreter start-up."""
    findings = []
    for item in (facts.get("python") or {}).get("broken_pth") or ():
        owner = item.get("owner") or {}
        if owner.get("kind") == "pip":
            hint = f"It belongs to {owner['name']} {owner['version']}, whose files are damaged: reinstall it."
            fixes = (pip_install(facts, f"{owner['name']}=={owner['version']}", options=("--force-reinstall", "--no-deps")),)
        elif owner.get("kind") == "dpkg":
            hint = f"It belongs to the system package {owner['name']}: reinstall that package (never delete its files)."
            fixes = (manual(f"sudo apt-get install --reinstall {owner['name']}"),)
        elif owner.get("kind") == "conda":
            hint = f"It belongs to the conda package {owner['name']}: reinstall that package (never delete its files)."
            fixes = (manual(f"conda install --force-reinstall {owner['name']}"),)
        else:
            hint = "No installed package owns it (left over from an uninstall): remove it."
            windows = (facts.get("python") or {}).get("platform") == "win32"
            fixes = (manual(f'del "{item["file"]}"' if windows else quote_command(["rm", item["file"]])),)
        findings.append(Finding(
            "python.broken-pth", WARNING,
            f"{item['file']} line {item['line']} raises at every start-up: {item['error']}",
            detail=f"Python prints \"Error processing line {item['line']} of {item['file']}\" whenever it starts, and "
                   f"ignores the rest of the file. The line: {item['text']}",
            hint=hint, fixes=fixes))
    return findings


RULES = (interpreter, bitness, end_of_life, externally_managed, pythonpath, user_site, shadowing, broken_pth)
