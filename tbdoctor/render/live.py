"""Live progress of long steps: on a terminal a spinner with the elapsed time
that turns into the step's result line; off a terminal (or with NO_COLOR)
nothing until a step ends, then one plain, stable line.

``PhaseLines`` is the listener of ``tbdoctor verify`` (events from
verify/runner.py and the job's marks); ``Spinner`` is the same display for one
step at a time (setup and fix, through render/fixplan.StepPrinter).
"""

from __future__ import annotations

import math
import threading

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.text import Text

from tbdoctor.render.console import glyphs

_STYLE = {"pass": "green", "fail": "red", "skipped": "dim"}
_GLYPH_KEY = {"pass": "ok", "fail": "error", "skipped": "skipped"}


def _progress(console: Console) -> Progress:
    return Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                    console=console, transient=True)


class Spinner:
    """One step at a time: ``start(title)`` ... ``stop()``; shows nothing off a terminal."""

    def __init__(self, console: Console):
        self.console = console
        self.live = _progress(console) if console.is_terminal else None
        self.task = None

    def start(self, title: str) -> None:
        if self.live is None:
            return
        self.stop()
        self.live.start()
        self.task = self.live.add_task(title)

    def stop(self) -> None:
        if self.live is not None and self.task is not None:
            self.live.remove_task(self.task)
            self.live.stop()
            self.task = None


class PhaseLines:
    """The listener of ``verify``: each phase as it starts (terminal) and its result line as it ends."""

    def __init__(self, console: Console, several: bool = False):
        self.console = console
        self.glyph = glyphs(console)
        self.several = several  # several frameworks: name each job phase's framework
        self.live = _progress(console) if console.is_terminal else None
        self.tasks: dict[tuple[str, str], int] = {}
        self.shown: set[tuple[str, str]] = set()
        self.lock = threading.Lock()  # job events come from a reader thread
        if self.live is not None:
            self.live.start()

    def label(self, name: str, framework: str) -> str:
        return f"{name} ({framework})" if self.several and framework else name

    def __call__(self, event: str, data: dict) -> None:
        with self.lock:
            if event == "start":
                self._start(data["name"], data.get("framework", ""))
            elif event == "progress":
                self._progress(data)
            elif event == "done":
                self._done(data["phase"])

    def _start(self, name: str, framework: str) -> None:
        key = (framework, name)
        if self.live is None or key in self.tasks or key in self.shown:
            return
        self.tasks[key] = self.live.add_task(self.label(name, framework))

    def _progress(self, data: dict) -> None:
        task = self.tasks.get((data.get("framework", ""), "train"))
        if self.live is None or task is None:
            return
        loss = data.get("loss")
        loss = f"{loss:.5f}" if isinstance(loss, float) and math.isfinite(loss) else str(loss)
        self.live.update(task, description=f"{self.label('train', data.get('framework', ''))}  "
                         f"step {data.get('step')}/{data.get('steps')}  loss {loss}")

    def _done(self, phase) -> None:
        key = (phase.framework, phase.name)
        if key in self.shown:
            return
        self.shown.add(key)
        task = self.tasks.pop(key, None)
        if task is not None:
            self.live.remove_task(task)
            self.live.refresh()  # so the finished spinner is not drawn again under its result line
        self.console.print(self.line(phase))

    def line(self, phase) -> Text:
        text = Text()
        text.append(f"{self.glyph[_GLYPH_KEY[phase.status]]} ", style=_STYLE[phase.status])
        text.append(f"{self.label(phase.name, phase.framework):<10} ", style="bold")
        text.append(f"{phase.status:<7}", style=_STYLE[phase.status])
        text.append(f" {phase.seconds:6.2f} s  ")
        text.append(phase.detail)
        return text

    def close(self) -> None:
        if self.live is not None:
            for task in self.tasks.values():
                self.live.remove_task(task)
            self.tasks.clear()
            self.live.stop()
