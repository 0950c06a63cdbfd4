"""GitHub Actions: ``::error``/``::warning`` workflow commands, one per problem,
escaped as GitHub's toolkit does (``@actions/core`` ``command.ts``). The step
summary is Markdown (``render/markdown.py``). Pure."""

from __future__ import annotations

from tbdoctor.findings import ERROR, WARNING, Report
from tbdoctor.render.markdown import headline


def escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def render(report: Report, strict: bool = False) -> str:
    lines = []
    for f in report.findings:
        if f.status == ERROR or f.status == WARNING:
            level = "error" if f.status == ERROR or strict else "warning"
            message = "\n".join([f.title, *([f.detail] if f.detail else []), *([f"Hint: {f.hint}"] if f.hint else []),
                                 *(f"Fix: {fix.command}" for fix in f.fixes)])
            lines.append(f"::{level} title={escape_property(f'tbdoctor {f.id}')}::{escape_data(message)}")
    lines.append(f"tbdoctor check: {headline(report)} ({len(report.findings)} checks)")
    return "\n".join(lines) + "\n"
