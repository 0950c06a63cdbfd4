"""Markdown: the check report as a document for a pull request, an issue or
GitHub's step summary, and the small escaping helpers other Markdown output
uses (``bugreport``). Pure."""

from __future__ import annotations

import re

from tbdoctor import compat
from tbdoctor.findings import ERROR, INFO, OK, SECTIONS, SKIPPED, WARNING, Report

ICON = {OK: "✅", INFO: "ℹ️", WARNING: "⚠️", ERROR: "❌", SKIPPED: "⏭️"}


def cell(text) -> str:
    """Text safe inside a table cell: one line, pipes and markup escaped."""
    text = " ".join(str(text).split())
    return re.sub(r"([\\|*_`<>\[\]])", r"\\\1", text)


def code(text) -> str:
    """Inline code that survives backticks in ``text`` (and table pipes: GFM splits
    cells at a ``|`` even inside code, so it is escaped there too)."""
    text = " ".join(str(text).split()).replace("|", "\\|")
    ticks = "`" * (max((len(r) for r in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{ticks}{pad}{text}{pad}{ticks}"


def block(text: str, lang: str = "") -> str:
    """A fenced code block longer than any backtick run inside it."""
    fence = "`" * max(3, max((len(r) for r in re.findall(r"`+", text)), default=0) + 1)
    return f"{fence}{lang}\n{text.rstrip()}\n{fence}"


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def headline(report: Report) -> str:
    counts = report.summary()
    parts = [f"{counts[s]} {word}{'s' if counts[s] != 1 else ''}"
             for s, word in ((ERROR, "error"), (WARNING, "warning")) if counts[s]]
    return ", ".join(parts) if parts else "no issues found"


def problems(report: Report, strict: bool = False) -> str:
    """Each error and warning with its detail, hint and fixes."""
    out = []
    for f in report.findings:
        if not f.is_problem:
            continue
        out.append(f"#### {ICON[f.status]} {code(f.id)}: {cell(f.title)}")
        if f.detail:
            out.append(block(f.detail))
        if f.hint:
            out.append(f"**Hint:** {cell(f.hint)}")
        if f.fixes:
            out.append("**Fix:**\n" + block("\n".join(fix.command for fix in f.fixes), "bash"))
    return "\n\n".join(out)


def render(report: Report, strict: bool = False) -> str:
    status = ERROR if report.failed(strict) else (WARNING if report.failed(True) else OK)
    target = report.target
    out = [f"## {ICON[status]} tbdoctor check: {headline(report)}",
           f"tbdoctor {cell(report.tbdoctor_version)} · target {code(target.get('python'))} "
           f"(chosen by {cell(target.get('chosen_by'))}) · knowledge base of {compat.kb_date()}"]
    out += [f"> {cell(note)}" for note in report.notes]
    rows = []
    for section, findings in report.sections():
        for f in findings:
            rows.append([ICON[f.status], cell(SECTIONS.get(section, section)), code(f.id), cell(f.title)])
    out.append(table(["", "Section", "Check", "Result"], rows))
    details = problems(report, strict)
    if details:
        out += ["### Problems", details]
    return "\n\n".join(out) + "\n"
