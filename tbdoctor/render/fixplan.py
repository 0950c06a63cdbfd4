"""Console output of ``fix`` and ``setup``: plans, dry-run impact, step progress,
outcomes and snapshot history. Formats only; plain text off a terminal."""

from __future__ import annotations


from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from tbdoctor.facts import redact_text
from tbdoctor.impact import Impact
from tbdoctor.plan import Plan
from tbdoctor.render.live import Spinner

_ACTION_STYLE = {"install": "green", "upgrade": "green", "reinstall": "cyan", "downgrade": "yellow", "remove": "red"}


def plan(console: Console, the_plan: Plan, step_titles: list[str], via: str) -> None:
    if the_plan.steps:
        table = Table(title=f"Plan (run with {via})", box=box.SIMPLE, title_justify="left", show_lines=False)
        table.add_column("#", justify="right")
        table.add_column("step")
        table.add_column("why")
        for index, (step, title) in enumerate(zip(the_plan.steps, step_titles), 1):
            why = "\n".join(f"{text} [{fid}]" for fid, text in step.reasons)
            table.add_row(str(index), Text(redact_text(title)), Text(why))
        console.print(table)
    if the_plan.manual:
        console.print(Text("Manual steps (tbdoctor never runs these; do them yourself):", style="bold"))
        for item in the_plan.manual:
            console.print(Text(f"  $ {redact_text(item.command)}", style="cyan"))
            console.print(Text(f"      for: {item.title} [{item.finding}]", style="dim"))


def impact(console: Console, the_impact: Impact) -> None:
    if not the_impact.changes:
        console.print("pip's dry run: nothing to install or remove")
        return
    table = Table(title="What pip would change (dry run)", box=box.SIMPLE, title_justify="left")
    table.add_column("action")
    table.add_column("distribution")
    table.add_column("from")
    table.add_column("to")
    for change in the_impact.changes:
        table.add_row(Text(change.action, style=_ACTION_STYLE.get(change.action, "")), Text(change.name),
                      Text(change.old or "-"), Text(change.new or "-"))
    console.print(table)


def refusal(console: Console, headline: str, lines: list[str] = (), hint: str = "") -> None:
    console.print(Text(f"✗ Refused: {redact_text(headline)}", style="red bold"))
    for line in lines:
        console.print(Text(f"    {redact_text(line)}"))
    if hint:
        console.print(Text(hint))


class StepPrinter:
    """Progress of running steps: a spinner with the elapsed time on a terminal
    (render/live.Spinner), one line per step otherwise."""

    def __init__(self, console: Console):
        self.console = console
        self.spinner = Spinner(console)
        self.title = ""

    def step(self, index: int, total: int, title: str, argv: list[str]) -> None:
        self.title = redact_text(f"[{index}/{total}] {title}")
        if self.console.is_terminal:
            self.spinner.start(self.title)
        else:
            self.console.print(f"{self.title} ...")

    def step_done(self, ok: bool, seconds: float, error: str) -> None:
        self.spinner.stop()
        mark = Text("✓ " if ok else "✗ ", style="green" if ok else "red")
        self.console.print(mark + Text(f"{self.title} ({seconds:.1f} s)"))
        for line in error.splitlines():
            self.console.print(Text(f"    {redact_text(line)}", style="red"))

    def note(self, text: str) -> None:
        self.spinner.stop()
        self.console.print(Text(redact_text(text), style="dim"))


def history(console: Console, snaps) -> None:
    if not snaps:
        console.print("No snapshots yet.")
        return
    table = Table(title="Snapshots (newest first)", box=box.SIMPLE, title_justify="left")
    for column in ("id", "created", "target", "for", "outcome", "wheels"):
        table.add_column(column)
    for snap in snaps:
        data = snap.data
        table.add_row(snap.id, data.get("created", "?"), Text(data["target"]["python"]),
                      Text(", ".join(data.get("findings") or ()) or "-"), Text(data.get("outcome", "?")),
                      f"{len(data.get('wheels') or ())} ({snap.size() / 1e6:.1f} MB)")
    console.print(table)


def restore_failed(console: Console, snap, restored) -> None:
    """A restore that did not put everything back: what is wrong, and the commands that finish it."""
    for line in restored.unrestored + restored.errors:
        console.print(Text(f"  ✗ {redact_text(line)}", style="red"))
    console.print(Text(f"✗ Restore failed: the environment does not match snapshot {snap.id}. "
                       f"The snapshot is kept ({snap.path}).", style="red bold"))
    if restored.by_hand:
        console.print(Text("Finish it by hand with:"))
        for command in restored.by_hand:
            console.print(Text(f"  $ {command}", style="cyan"), soft_wrap=True)


def pruned(console: Console, removed, keep: int, max_mb: float) -> None:
    if not removed:
        console.print(f"No snapshot to remove (keeping the newest {keep} per environment within {max_mb:g} MB).")
        return
    for snap in removed:
        console.print(Text(f"removed snapshot {snap.id} ({snap.data['target']['python']}, {snap.data.get('created')})"))
    console.print(f"Removed {len(removed)} snapshot(s); kept the newest {keep} per environment within {max_mb:g} MB.")
