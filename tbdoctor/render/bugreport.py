"""The ``tbdoctor report`` document: what a maintainer asks for in a bug report.

It covers what ``python -m torch.utils.collect_env`` prints (OS, compilers,
libc, Python, CUDA build and availability, driver, GPUs, cuDNN, CPU, the
relevant pip packages) and what TensorBoard's ``diagnose_tensorboard.py``
logs (platform, conda/venv, the tensorboard and tensorflow package families,
the framework facts), plus tbdoctor's findings. Everything comes from the
Report (facts and findings): nothing is probed here. Pure; the caller redacts.
"""

from __future__ import annotations

import json

from packaging.utils import canonicalize_name

from tbdoctor import compat
from tbdoctor.findings import SECTIONS, Report
from tbdoctor.render.markdown import ICON, block, cell, code, headline, problems, table

SCHEMA = "tbdoctor.bugreport/1"
# Substrings of package names worth listing (collect_env's patterns plus the
# TensorBoard families diagnose_tensorboard.py checks).
_RELEVANT = ("torch", "numpy", "triton", "optree", "mypy", "flake8", "onnx", "nvidia", "cuda", "cudnn", "nccl",
             "cublas", "tensorboard", "tensorflow", "tf-nightly", "tb-nightly", "tf-estimator", "keras", "protobuf",
             "setuptools", "jax", "mkl", "intel-openmp", "pip")
_OWN = ("system", "python", "packages", "policy")  # facts with their own section below
_LIST_LIMIT = 64


def _flatten(value, prefix: str = "") -> list[tuple[str, str]]:
    """(dotted key, text) rows for any JSON-like value."""
    if isinstance(value, dict):
        rows = []
        for k, v in value.items():
            rows += _flatten(v, f"{prefix}.{k}" if prefix else str(k))
        return rows or [(prefix, "(empty)")]
    if isinstance(value, list):
        if all(not isinstance(v, (dict, list)) for v in value):
            shown = ", ".join(_scalar(v) for v in value[:_LIST_LIMIT])
            more = f" … ({len(value) - _LIST_LIMIT} more)" if len(value) > _LIST_LIMIT else ""
            return [(prefix, (shown + more) or "(none)")]
        rows = []
        for i, v in enumerate(value[:_LIST_LIMIT]):
            rows += _flatten(v, f"{prefix}[{i}]")
        if len(value) > _LIST_LIMIT:
            rows.append((prefix, f"… {len(value) - _LIST_LIMIT} more"))
        return rows
    return [(prefix, _scalar(value))]


def _scalar(value) -> str:
    if value is None:
        return "Could not collect"
    if value is True or value is False:
        return "Yes" if value else "No"
    return str(value)


def _system(facts: dict) -> list[tuple[str, str]]:
    s = facts.get("system")
    if not isinstance(s, dict):
        return [("system", "Could not collect (the system probe failed)")]
    compilers = s.get("compilers") or {}
    memory = s.get("memory_mib")
    return [("OS", _scalar(s.get("os"))), ("Machine", _scalar(s.get("machine"))),
            ("Libc version", _scalar(s.get("libc"))),
            ("GCC version", _scalar(compilers.get("gcc"))), ("Clang version", _scalar(compilers.get("clang"))),
            ("CMake version", _scalar(compilers.get("cmake"))),
            ("CPU", f"{_scalar(s.get('cpu'))} ({_scalar(s.get('cpu_count'))} logical CPUs)"),
            ("Memory", f"{memory / 1024:.1f} GiB" if isinstance(memory, (int, float)) else "Could not collect"),
            ("Host", _scalar(s.get("hostname"))), ("User", _scalar(s.get("user")))]


def _python(facts: dict) -> list[tuple[str, str]]:
    py = facts.get("python")
    if not isinstance(py, dict):
        return [("python", "Could not collect (the python probe failed)")]
    pip = py.get("pip") or {}
    rows = [("Python version", f"{py.get('version')} ({py.get('implementation')}, {py.get('bits')}-bit)"),
            ("Python platform", f"{py.get('platform')} {py.get('machine')}"),
            ("Executable", _scalar(py.get("executable"))), ("Prefix", _scalar(py.get("prefix"))),
            ("Environment", f"{py.get('env_kind')} ({py.get('env_evidence')})"),
            ("Externally managed (PEP 668)", _scalar(bool(py.get("externally_managed")))),
            ("pip", _scalar(pip.get("version")) if pip.get("installed") else "not installed")]
    rows += [(f"pip config {k}", _scalar(v)) for k, v in sorted((pip.get("config") or {}).items())]
    return rows


def _packages(facts: dict) -> list[list[str]]:
    dists = (facts.get("packages") or {}).get("distributions") or []
    rows = []
    for d in dists:
        name = canonicalize_name(d.get("name") or "")
        if any(p in name for p in _RELEVANT):
            rows.append([cell(d.get("name")), cell(d.get("version")), cell(d.get("installer") or ""),
                         cell(d.get("location") or "")])
    return sorted(rows, key=lambda r: r[0].lower())


def to_dict(report: Report) -> dict:
    facts = report.facts
    sections = [{"title": "System", "rows": _system(facts)}, {"title": "Python", "rows": _python(facts)}]
    for name in (facts.get("probes") or {}):
        if name not in _OWN:
            sections.append({"title": SECTIONS.get(name, name), "rows": _flatten(facts.get(name), name)})
    environ = (facts.get("python") or {}).get("environ") or {}
    sections.append({"title": "Environment variables", "rows": sorted(environ.items()) or [("(none)", "")]})
    probes = [{"name": n, **m} for n, m in (facts.get("probes") or {}).items()]
    return {"schema": SCHEMA, "tbdoctor": report.tbdoctor_version,
            "target": {k: report.target.get(k) for k in ("python", "chosen_by")},
            "collected_at": facts.get("collected_at"), "summary": report.summary(), "notes": list(report.notes),
            "sections": [{"title": s["title"], "rows": [list(r) for r in s["rows"]]} for s in sections],
            "packages": [d for d in (facts.get("packages") or {}).get("distributions") or []
                         if any(p in canonicalize_name(d.get("name") or "") for p in _RELEVANT)],
            "probes": probes, "checks": [f.to_dict() for f in report.findings],
            "knowledge_base": {"date": compat.kb_date()}}


def to_json(report: Report) -> str:
    return json.dumps(to_dict(report), indent=2) + "\n"


def to_markdown(report: Report) -> str:
    data = to_dict(report)
    out = [f"# tbdoctor report: {headline(report)}",
           f"tbdoctor {cell(report.tbdoctor_version)} · target {code(report.target.get('python'))} "
           f"(chosen by {cell(report.target.get('chosen_by'))}) · collected {cell(data['collected_at'])} "
           f"· knowledge base of {data['knowledge_base']['date']}"]
    out += [f"> {cell(note)}" for note in report.notes]
    for section in data["sections"]:
        out.append(f"## {section['title']}")
        out.append(table(["", ""], [[cell(k), code(v) if v else ""] for k, v in section["rows"]]))
    out.append("## Relevant packages")
    pkgs = _packages(report.facts)
    out.append(table(["Package", "Version", "Installer", "Location"], pkgs) if pkgs else "None of the relevant packages is installed.")
    out.append("## Findings")
    details = problems(report)
    if details:
        out.append(details)
    rows = [[ICON[f.status], code(f.id), cell(f.title)] for _, fs in report.sections() for f in fs]
    out.append(table(["", "Check", "Result"], rows))
    out.append("## Probes")
    out.append(table(["Probe", "Status", "Seconds", "Error"],
                     [[cell(p["name"]), cell(p.get("status")), cell(p.get("seconds")), cell(p.get("error") or "")]
                      for p in data["probes"]]))
    out.append("<details><summary>Environment (JSON)</summary>\n\n" + block(json.dumps(
        {k: report.facts.get(k) for k in ("target", "python", "system")}, indent=2), "json") + "\n\n</details>")
    return "\n\n".join(out) + "\n"
