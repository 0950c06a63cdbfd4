"""The console report, in the style of ``flutter doctor``. The only module
that draws a Report with rich. Plain, colourless, stable text when the output
is not a terminal or NO_COLOR is set."""

from __future__ import annotations

import os
import sys

from rich.console import Console
from rich.text import Text

from tbdoctor import compat
from tbdoctor.findings import ERROR, INFO, OK, SECTIONS, SKIPPED, WARNING, Report, worst

_STYLE = {OK: "green", INFO: "blue", WARNING: "yellow", ERROR: "red", SKIPPED: "dim"}
_GLYPHS = {OK: "✓", INFO: "•", WARNING: "!", ERROR: "✗", SKIPPED: "-"}
_ASCII = {OK: "+", INFO: "*", WARNING: "!", ERROR: "x", SKIPPED: "-"}


def make_console(stream=None) -> Console:
    """A console on ``stream`` (stdout): colour only on a terminal without NO_COLOR."""
    stream = stream or sys.stdout
    plain = not stream.isatty() or "NO_COLOR" in os.environ
    return Console(file=stream, no_color=plain, highlight=False, emoji=False,
                   force_terminal=False if plain else None, width=10_000 if plain else None, soft_wrap=True)


def glyphs(console: Console) -> dict[str, str]:
    encoding = (getattr(console.file, "encoding", None) or "utf-8")
    try:
        "✓✗•".encode(encoding)
        return _GLYPHS
    except (UnicodeEncodeError, LookupError):
        return _ASCII


def _summary(report: Report) -> tuple[str, str]:
    counts = report.summary()
    problem_sections = {f.section for f in report.findings if f.is_problem}
    if not problem_sections:
        return OK, "No issues found" + (f" ({counts[SKIPPED]} skipped)" if counts[SKIPPED] else "")
    parts = []
    for status, word in ((ERROR, "error"), (WARNING, "warning")):
        if counts[status]:
            parts.append(f"{counts[status]} {word}{'s' if counts[status] != 1 else ''}")
    n = len(problem_sections)
    return (ERROR if counts[ERROR] else WARNING), f"{', '.join(parts)} in {n} section{'s' if n != 1 else ''}"


def render(report: Report, console: Console, verbose: bool = False) -> None:
    glyph = glyphs(console)
    target = report.target
    console.print(Text(f"tbdoctor {report.tbdoctor_version} (knowledge base of {compat.kb_date()}) · "
                       f"target {target.get('python')} (chosen by {target.get('chosen_by')})", style="bold"))
    for note in report.notes:
        console.print(Text(note, style="dim"))
    console.print()
    for section, findings in report.sections():
        status = worst(f.status for f in findings)
        head = findings[0]
        label = SECTIONS.get(section, section)
        line = Text(f"[{glyph[status]}] ", style=_STYLE[status])
        line.append(label, style="bold")
        if head.status in (OK, INFO) and head.title:
            line.append(f": {head.title}")
            findings = findings[1:]
        if verbose:
            line.append(f"  ({max(f.seconds for f in [head, *findings]):.2f} s)", style="dim")
        console.print(line)
        for f in findings:
            if not verbose and f.status in (OK, INFO, SKIPPED):
                continue
            _finding(console, f, glyph, verbose)
    console.print()
    status, text = _summary(report)
    console.print(Text(f"{glyph[status]} {text}", style=_STYLE[status]))


def _finding(console: Console, f, glyph: dict, verbose: bool) -> None:
    line = Text(f"    {glyph[f.status]} ", style=_STYLE[f.status])
    line.append(f.title)
    if verbose:
        line.append(f"  [{f.id}]", style="dim")
    console.print(line)
    if f.detail and (f.is_problem or verbose):
        for detail_line in f.detail.splitlines():
            console.print(Text(f"      {detail_line}", style="dim"))
    if f.hint and f.is_problem:
        console.print(Text(f"      → {f.hint}" if glyph is _GLYPHS else f"      -> {f.hint}"))
    for fix in f.fixes:
        console.print(Text(f"      $ {fix.command}", style="cyan"))
    if verbose and f.verbose_detail:
        for detail_line in f.verbose_detail.rstrip().splitlines():
            console.print(Text(f"      {detail_line}", style="dim"))
