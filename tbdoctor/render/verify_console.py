"""The console view of a ``tbdoctor verify`` outcome: a phase table, the device,
the recovered parameters and the loss curve read back from the event files.

Colour and Unicode only on a terminal (see console.make_console); plain,
stable text when piped. The curve is a few lines of hand-made drawing: rich has
no plot, and a plotting dependency for one small chart is not worth it.
"""

from __future__ import annotations

import math

from rich.console import Console
from rich.table import Table
from rich.text import Text

from tbdoctor.render.console import _glyphs
from tbdoctor.verify.result import FAIL, PASS, REFERENCE, SKIPPED, Outcome

_STYLE = {PASS: "green", FAIL: "red", SKIPPED: "dim"}
_GLYPH_KEY = {PASS: "ok", FAIL: "error", SKIPPED: "skipped"}


def render(outcome: Outcome, console: Console, version: str, verbose: bool = False) -> None:
    glyph = _glyphs(console)
    target = outcome.target
    console.print(Text(f"tbdoctor {version} verify · target {target.get('python')} "
                       f"(chosen by {target.get('chosen_by')})", style="bold"))
    console.print()
    several = len(outcome.jobs) > 1
    table = Table(box=None, show_edge=False, pad_edge=False, header_style="bold")
    for column, justify in (("phase", "left"), ("status", "left"), ("seconds", "right"), ("detail", "left")):
        table.add_column(column, justify=justify, overflow="fold")
    for phase in outcome.all_phases():
        name = f"{phase.name} ({phase.framework})" if several and phase.framework else phase.name
        status = Text(f"{glyph[_GLYPH_KEY[phase.status]]} {phase.status}", style=_STYLE[phase.status])
        table.add_row(name, status, f"{phase.seconds:.2f}", phase.detail)
    console.print(table)
    console.print()
    for job in outcome.jobs:
        prefix = f"[{job.framework}] " if several else ""
        if job.device:
            extra = ""
            if job.gpu:
                extra = (f" ({job.gpu.get('name')}, cuDNN {job.gpu.get('cudnn')}, {job.gpu.get('amp')}, "
                         f"peak memory {job.gpu.get('peak_memory_mb')} MiB)")
            console.print(Text(f"{prefix}Device: {job.device}{extra}"))
        if job.params:
            tol = REFERENCE["tolerance"]
            pm = "±" if glyph["ok"] != "+" else "+-"
            console.print(Text(f"{prefix}Recovered: weight {job.params['weight']:.4f} (true {REFERENCE['weight']:g} {pm} {tol:g}), "
                               f"bias {job.params['bias']:.4f} (true {REFERENCE['bias']:g} {pm} {tol:g}), "
                               f"final loss {job.final_loss:.5f} (bound {REFERENCE['loss_bound']:g}), {job.steps} steps"))
        if verbose:
            for note in job.notes:
                console.print(Text(note, style="dim"))
    if outcome.curve:
        console.print()
        console.print(Text(f"Loss per step, read back from the event files (log scale, {len(outcome.curve)} points):"))
        for line in curve_lines(outcome.curve, ascii_only=glyph["ok"] == "+"):
            console.print(Text(line, style="cyan"))
    if outcome.distributed and outcome.distributed.get("multi_node_command"):
        console.print()
        console.print("Across machines (run the same on each; HOST0 is the first one's address):")
        console.print(Text(f"  $ {outcome.distributed['multi_node_command']}", style="cyan"))
    for note in outcome.notes if verbose else ():
        console.print(Text(note, style="dim"))
    console.print()
    console.print(Text(f"Logdir: {outcome.run_dir}" + ("" if outcome.logdir_kept else
                                                        " (removed on exit; pass --keep or --logdir to keep it)")))
    failure = outcome.first_failure()
    if failure is None and outcome.passed:
        console.print(Text(f"{glyph['ok']} Verified: the job trained, logged, and TensorBoard shows what was written",
                           style="green"))
        return
    if failure is None:
        console.print(Text(f"{glyph['error']} Not verified: the training phase did not run", style="red"))
        return
    arrow = "→" if glyph["ok"] != "+" else "->"
    console.print(Text(f"{glyph['error']} Failed in the {failure.name} phase: {failure.detail}", style="red"))
    if failure.fix:
        console.print(Text(f"  {arrow} {failure.fix}"))


def curve_lines(points: list[tuple[int, float]], width: int = 60, height: int = 8, ascii_only: bool = False) -> list[str]:
    """A small log-scale scatter of (step, loss): one column per bucket of steps."""
    finite = [(s, v) for s, v in points if math.isfinite(v) and v > 0]
    if not finite:
        return ["(no finite positive loss values to draw)"]
    width = max(1, min(width, len(finite)))
    first, last = finite[0][0], finite[-1][0]
    span = max(1, last - first)
    columns: list[list[float]] = [[] for _ in range(width)]
    for step, value in finite:
        columns[min(width - 1, (step - first) * width // (span + 1))].append(math.log10(value))
    lows = [min(c) for c in columns if c]
    highs = [max(c) for c in columns if c]
    top, bottom = max(highs), min(lows)
    rows = [[" "] * width for _ in range(height)]
    dot = "*" if ascii_only else "•"
    for x, column in enumerate(columns):
        if column:
            mean = sum(column) / len(column)
            y = 0 if top == bottom else round((top - mean) / (top - bottom) * (height - 1))
            rows[y][x] = dot
    labels = [f"{10 ** (top - (top - bottom) * i / max(1, height - 1)):.3g}" if i in (0, height - 1) else ""
              for i in range(height)]
    pad = max(len(label) for label in labels)
    bar = "|" if ascii_only else "┤"
    lines = [f"{label.rjust(pad)} {bar}{''.join(row)}" for label, row in zip(labels, rows)]
    axis = f"step {first}"
    end = f"step {last}"
    lines.append(" " * (pad + 2) + axis + end.rjust(max(len(end) + 1, width - len(axis))))
    return lines
