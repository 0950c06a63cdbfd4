"""JUnit XML: one test case per check, the shape Jenkins, GitLab and GitHub
test reporters read (``testsuites > testsuite > testcase > failure|skipped``).

Errors are failures; warnings are failures under ``strict`` and passing cases
with a ``system-out`` note otherwise; skipped checks are ``<skipped/>``. One
test suite per report section. Pure; built with ``xml.etree``.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from tbdoctor import compat
from tbdoctor.findings import ERROR, SKIPPED, WARNING, Finding, Report

# Characters XML 1.0 cannot carry at all (escaping does not help): drop them.
# Hand-written because ElementTree writes them as-is and produces a broken file.
_NOT_XML = re.compile("[^\u0009\u000A\u000D\u0020-\uD7FF\uE000-\uFFFD\U00010000-\U0010FFFF]")


def _x(text) -> str:
    return _NOT_XML.sub("\ufffd", str(text))


def _body(f: Finding) -> str:
    parts = [f.title]
    if f.detail:
        parts.append(f.detail)
    if f.hint:
        parts.append(f"Hint: {f.hint}")
    parts += [f"Fix: {fix.command}" for fix in f.fixes]
    return _x("\n".join(parts))


def _case(suite: ET.Element, f: Finding, name: str, strict: bool) -> str:
    case = ET.SubElement(suite, "testcase", classname=_x(f"tbdoctor.{f.section}"), name=_x(name),
                         time=f"{f.seconds:.3f}")
    if f.status == ERROR or (f.status == WARNING and strict):
        failure = ET.SubElement(case, "failure", message=_x(f.title), type=f.status)
        failure.text = _body(f)
        return "failure"
    if f.status == SKIPPED:
        ET.SubElement(case, "skipped", message=_x(f.detail or f.title))
        return "skipped"
    out = ET.SubElement(case, "system-out")
    out.text = _body(f) if f.status == WARNING else _x(f"{f.status}: {f.title}")
    return "pass"


def render(report: Report, strict: bool = False) -> str:
    root = ET.Element("testsuites", name="tbdoctor check")
    totals = {"tests": 0, "failures": 0, "skipped": 0, "time": 0.0}
    seen: dict[str, int] = {}
    for section, findings in report.sections():
        suite = ET.SubElement(root, "testsuite", name=_x(f"tbdoctor.{section}"))
        if not totals["tests"]:
            props = ET.SubElement(suite, "properties")
            ET.SubElement(props, "property", name="tbdoctor", value=_x(report.tbdoctor_version))
            ET.SubElement(props, "property", name="knowledge_base", value=compat.kb_date())
            for key in ("python", "chosen_by"):
                ET.SubElement(props, "property", name=f"target.{key}", value=_x(report.target.get(key)))
        counts = {"failure": 0, "skipped": 0}
        for f in findings:
            seen[f.id] = seen.get(f.id, 0) + 1
            name = f.id if seen[f.id] == 1 else f"{f.id} ({seen[f.id]})"
            result = _case(suite, f, name, strict)
            counts[result] = counts.get(result, 0) + 1
        seconds = max((f.seconds for f in findings), default=0.0)  # the probes behind a section run at once
        suite.set("tests", str(len(findings)))
        suite.set("failures", str(counts["failure"]))
        suite.set("errors", "0")
        suite.set("skipped", str(counts["skipped"]))
        suite.set("time", f"{seconds:.3f}")
        totals["tests"] += len(findings)
        totals["failures"] += counts["failure"]
        totals["skipped"] += counts["skipped"]
        totals["time"] += seconds
    root.set("tests", str(totals["tests"]))
    root.set("failures", str(totals["failures"]))
    root.set("errors", "0")
    root.set("skipped", str(totals["skipped"]))
    root.set("time", f"{totals['time']:.3f}")
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"

