"""The console view of a ``tbdoctor verify`` outcome, after its phase lines
(render/live.py): the device, the recovered parameters, the loss curve read
back from the event files, the verdict and how to look at the run.

Colour and Unicode only on a terminal (see console.make_console); plain,
stable text when piped. The curve is a few lines of hand-made drawing: rich has
no plot, and a plotting dependency for one small chart is not worth it.
"""

from __future__ import annotations

import math
import os

from rich.console import Console
from rich.table import Table
from rich.text import Text

from tbdoctor.findings import quote_command
from tbdoctor.render.console import glyphs
from tbdoctor.verify.result import FAIL, PASS, REFERENCE, STAGES, Outcome


def header(target: dict, console: Console, version: str) -> None:
    console.print(Text(f"tbdoctor {version} verify · target {target.get('python')} "
                       f"(chosen by {target.get('chosen_by')})", style="bold"))
    console.print()


def render(outcome: Outcome, console: Console, verbose: bool = False, serving: bool = False) -> None:
    """What follows the phase lines (render/live.py): device, parameters, curve, verdict, next step."""
    glyph = glyphs(console)
    several = len(outcome.jobs) > 1
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
    if outcome.distributed and outcome.distributed.get("nodes"):
        console.print()
        console.print(node_table(outcome.distributed["nodes"]))
    for note in outcome.notes if verbose else ():
        console.print(Text(note, style="dim"))
    if outcome.kinds:
        console.print()
        for line, style in kind_lines(outcome, glyph):
            console.print(Text(line, style=style))
    console.print()
    console.print(Text(f"Logdir: {outcome.run_dir}" + ("" if outcome.logdir_kept else
                                                        " (removed on exit; pass --keep or --logdir to keep it)")))
    if outcome.screenshot and outcome.logdir_kept:
        console.print(Text(f"Screenshot of TensorBoard: {outcome.screenshot}"))
    _verdict(outcome, console, glyph)
    if outcome.passed and not serving:
        console.print()
        if outcome.logdir_kept and os.path.isdir(outcome.run_dir):
            console.print("To look at it in TensorBoard (or run `tbdoctor verify --serve`):")
            console.print(Text(f"  $ {tensorboard_command(outcome)}", style="cyan"))
        else:
            console.print("To look at it in TensorBoard: `tbdoctor verify --serve`, or `tbdoctor verify --keep` "
                          "to keep the logdir and its screenshot.")


def tensorboard_command(outcome: Outcome) -> str:
    """The target's own TensorBoard on the run directory, on 127.0.0.1 only."""
    python = outcome.target.get("python") or "python"
    script = os.path.join(os.path.dirname(python), "tensorboard.exe" if os.name == "nt" else "tensorboard")
    argv = [script] if os.path.isfile(script) else [python, "-m", "tensorboard.main"]
    return quote_command(argv + ["--logdir", outcome.run_dir, "--host", "127.0.0.1"])


_HEADS = {"written": "written", "read_back": "read back", "served": "served", "shown": "shown"}


def kind_lines(outcome: Outcome, glyph: dict) -> list[tuple[str, str]]:
    """The per-kind table (kind, then one mark per stage: pass, fail, or - not reached), and each failure's cause."""
    marks = {PASS: glyph["ok"], FAIL: glyph["error"], None: "-"}
    width = max(len("Summary kind"), *(len(k) for k in outcome.kinds)) + 2
    heads = [_HEADS[s] for s in STAGES]
    lines = [("Summary kind".ljust(width) + "  ".join(heads), "bold")]
    for name, kind in outcome.kinds.items():
        cells = [marks.get(getattr(kind, s), "-").ljust(len(h)) for s, h in zip(STAGES, heads)]
        style = "red" if kind.failed_stage else ("green" if kind.last() == PASS else "dim")
        lines.append(((name.ljust(width) + "  ".join(cells)).rstrip(), style))
    arrow = "→" if glyph["ok"] != "+" else "->"
    for kind in outcome.failed_kinds():
        if kind.detail:
            lines.append((f"  {kind.name}: {kind.detail}", "red"))
            lines.append((f"    {arrow} {kind.fix}", ""))
    return lines


def _verdict(outcome: Outcome, console: Console, glyph: dict) -> None:
    failure = outcome.first_failure()
    failed_phase = any(p.status == FAIL for p in outcome.all_phases())
    if failure is not None and not failed_phase:  # every phase passed; an optional kind failed
        names = ", ".join(f"{k.name} (not {_HEADS[k.failed_stage]})" for k in outcome.failed_kinds())
        console.print(Text(f"{glyph['error']} Scalars verified ({_reached(outcome)}), but summary kinds failed: {names}",
                           style="red"))
        return
    if failure is None and outcome.passed:
        console.print(Text(f"{glyph['ok']} Verified: the job trained, {_reached(outcome)}", style="green"))
        return
    if failure is None:
        console.print(Text(f"{glyph['error']} Not verified: the training phase did not run", style="red"))
        return
    arrow = "→" if glyph["ok"] != "+" else "->"
    console.print(Text(f"{glyph['error']} Failed in the {failure.name} phase: {failure.detail}", style="red"))
    if failure.fix:
        console.print(Text(f"  {arrow} {failure.fix}"))


def _reached(outcome: Outcome) -> str:
    """How far the scalars got: the furthest phase that passed."""
    status = {p.name: p.status for p in outcome.phases}
    if status.get("browser") == PASS:
        return "TensorBoard draws the loss curve in a browser"
    if status.get("server") == PASS:
        return "TensorBoard serves what was written"
    if status.get("readback") == PASS:
        return "the event files read back exactly"
    if (outcome.distributed or {}).get("nodes"):
        return "training worked on every node (the node of global rank 0 writes the event files)"
    return "training worked (nothing was logged)"


def node_table(nodes: list[dict]) -> Table:
    """One row per machine of a multi-node verify, as rank 0 gathered them."""
    table = Table(title="Nodes (as the rendezvous ranked them)", title_justify="left")
    for name in ("node", "hostname", "address", "ranks", "torch", "cuda", "nccl", "gloo", "device", "interface",
                 "seconds"):
        table.add_column(name)
    for row in nodes:
        table.add_row(str(row.get("group_rank")), row.get("hostname") or "", row.get("address") or "",
                      ",".join(map(str, row.get("ranks", []))), row.get("torch") or "", row.get("cuda") or "-",
                      row.get("nccl") or "-", "yes" if row.get("gloo") else "no", row.get("device") or "",
                      row.get("interface") or "default", f"{row.get('seconds') or 0:.1f}")
    return table


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
    lines = [f"{label.rjust(pad)} {bar}{''.join(row)}".rstrip() for label, row in zip(labels, rows)]
    axis = f"step {first}"
    end = f"step {last}"
    lines.append(" " * (pad + 2) + axis + end.rjust(max(len(end) + 1, width - len(axis))))
    return lines
