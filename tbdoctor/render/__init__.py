"""Renderers: pure functions from a Report to text, and ``emit``, the one place
that picks a format, redacts, and writes (stdout, ``--output``, GitHub's step
summary).

Formats: rich (the console report, ``console.py``), json (``json_report.py``),
junit, markdown, github. Everything that leaves tbdoctor passes through
``redacted`` first (``facts.Redactor``), and again, as text, through the
redacting stdout/stderr (``redact.install``) or ``files.write_text``. Imports are lazy: ``cli`` reads
``FORMATS`` for ``--help``.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

from tbdoctor.errors import UsageError

if TYPE_CHECKING:
    from tbdoctor.findings import Report

FORMATS = ("rich", "json", "junit", "markdown", "github")


def redacted(report: Report, identities: bool = True) -> Report:
    """The report with secrets (and, with ``identities``, home, user, host and GPU UUIDs) removed."""
    from dataclasses import replace

    from tbdoctor.facts import Redactor
    from tbdoctor.findings import Finding
    r = Redactor(report.facts, identities=identities)
    return replace(report, target=r.value(report.target), facts=r.value(report.facts),
                   notes=[r.text(n) for n in report.notes],
                   findings=[Finding.from_dict(r.value(f.to_dict())) for f in report.findings])


def render(report: Report, fmt: str, strict: bool = False, verbose: bool = False) -> str:
    """``report`` as text in ``fmt`` (rich gives the plain console text)."""
    if fmt == "rich":
        import io

        from tbdoctor.render import console
        buffer = io.StringIO()
        console.render(report, console.make_console(buffer), verbose=verbose)
        return buffer.getvalue()
    if fmt == "json":
        from tbdoctor.render import json_report
        return json_report.render(report)
    if fmt == "junit":
        from tbdoctor.render import junit
        return junit.render(report, strict)
    if fmt == "markdown":
        from tbdoctor.render import markdown
        return markdown.render(report, strict)
    if fmt == "github":
        from tbdoctor.render import github
        return github.render(report, strict)
    raise UsageError(f"--format {fmt}: unknown format (choose from {', '.join(FORMATS)})")


def write_file(path: str, text: str, option: str = "--output", serialised: bool = False) -> None:
    from pathlib import Path

    from tbdoctor import files
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        files.write_text(path, text, serialised=serialised)
    except OSError as exc:
        raise UsageError(f"{option} {path}: cannot write ({exc.strerror or exc})") from None


def emit(report: Report, fmt: str, output: str | None = None, strict: bool = False, verbose: bool = False) -> None:
    """Redact, render and write ``report``.

    With ``output`` the ``fmt`` text goes to that file and the console report
    to stdout (a CI log and an artifact from one run). On GitHub Actions
    (``GITHUB_ACTIONS=true``), or with ``--format github``, the Markdown
    summary is appended to ``$GITHUB_STEP_SUMMARY`` when that is set.
    """
    report = redacted(report)
    if output:  # JSON is the redacted values serialised: only the known secrets are looked for again
        write_file(output, render(report, fmt, strict, verbose), serialised=fmt == "json")
    if not output or fmt != "rich":
        if fmt == "rich" or output:
            from tbdoctor.render import console
            console.render(report, console.make_console(), verbose=verbose)
        elif fmt == "json" and hasattr(sys.stdout, "write_redacted"):
            sys.stdout.write_redacted(render(report, fmt, strict, verbose))
        else:
            sys.stdout.write(render(report, fmt, strict, verbose))
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary and (fmt == "github" or os.environ.get("GITHUB_ACTIONS") == "true"):
        from tbdoctor import files
        from tbdoctor.render import markdown
        try:
            files.write_text(summary, markdown.render(report, strict) + "\n", append=True)
        except OSError as exc:
            print(f"tbdoctor: warning: cannot append to $GITHUB_STEP_SUMMARY {summary}: {exc.strerror or exc}",
                  file=sys.stderr)
