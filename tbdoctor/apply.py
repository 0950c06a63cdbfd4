"""Apply a Plan: snapshot, run each pip step, check again, restore on any failure.

The environment is restored from the snapshot when a step fails, when the
user presses Ctrl-C (SIGINT; pip first gets its own SIGINT to undo its
half-done step), or when the check after applying reports an error that was
not there before. Output goes through the ``Progress`` callbacks the command
passes in; this module prints nothing itself.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from dataclasses import dataclass
from typing import Callable, Protocol

from packaging.utils import canonicalize_name

from tbdoctor import payload, snapshot
from tbdoctor.facts import redact_text
from tbdoctor.findings import ERROR, Finding, Report, quote_command
from tbdoctor.impact import Impact
from tbdoctor.pipcmd import Pip, errors_of
from tbdoctor.plan import BOOTSTRAP, UNINSTALL, Plan, Step, project_key
from tbdoctor.target import Target

APPLIED, ROLLED_BACK, NOT_STARTED = "applied", "rolled back", "not started"
NOT_RESTORED = snapshot.INCOMPLETE


class Progress(Protocol):
    def step(self, index: int, total: int, title: str, argv: list[str]) -> None: ...
    def step_done(self, ok: bool, seconds: float, error: str) -> None: ...
    def note(self, text: str) -> None: ...


@dataclass
class Outcome:
    status: str  # applied | rolled back | restore incomplete | not started
    message: str
    snapshot: snapshot.Snapshot | None
    after: Report | None = None
    restore: snapshot.Restore | None = None


def step_argv(pip: Pip, step: Step) -> list[str]:
    if step.kind == BOOTSTRAP:
        return pip.bootstrap_argv()
    if step.kind == UNINSTALL:
        return pip.uninstall_argv(step.packages)
    return pip.install_argv(step.packages, step.options)


def step_title(step: Step) -> str:
    if step.kind == BOOTSTRAP:
        return "install pip (ensurepip)"
    verb = "uninstall" if step.kind == UNINSTALL else "install"
    return f"{verb} {' '.join(step.packages)}" + (f"  ({' '.join(step.options)})" if step.options else "")


def problem(finding: Finding) -> tuple[str, str]:
    """What a finding is about: its id and its subject (the package), or the projects its fixes name."""
    subject = finding.subject or ",".join(sorted({project_key(p) for fix in finding.fixes for p in fix.packages}))
    return finding.id, subject


def new_errors(before: Report, after: Report) -> list[str]:
    """Error findings after applying that are a problem (id and subject) without an error before:
    a fix that trades a conflict on one package for one on another made things worse."""
    had = {problem(f) for f in before.findings if f.status == ERROR}
    return [f"{f.id}: {f.title}" for f in after.findings if f.status == ERROR and problem(f) not in had]


@contextlib.contextmanager
def _no_interrupts():
    """Restoring must not be cut short by a second Ctrl-C."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _roll_back(snap: snapshot.Snapshot, pip: Pip, target: Target, why: str, progress: Progress) -> Outcome:
    progress.note(f"{why}: restoring snapshot {snap.id} ...")
    with _no_interrupts():
        restored = snapshot.restore(snap, pip, target)
    if restored.ok:
        snap.update(outcome=f"{ROLLED_BACK}: {why}")
        return Outcome(ROLLED_BACK, f"{why}; the environment was restored from snapshot {snap.id}", snap, restore=restored)
    problems = "; ".join(restored.unrestored + restored.errors)
    snap.update(outcome=f"{NOT_RESTORED}: {why}; {problems}")
    return Outcome(NOT_RESTORED, f"{why}; restoring snapshot {snap.id} was incomplete: {problems}. "
                   f"Its wheels are in {snap.wheels}", snap, restore=restored)


def apply(plan: Plan, impact: Impact, pip: Pip, target: Target, facts: dict, before: Report,
          recheck: Callable[[], Report], progress: Progress) -> Outcome:
    """Snapshot, run ``plan.steps`` in order, check again; restore if anything goes wrong."""
    reasons = sorted({fid for step in plan.steps for fid, _ in step.reasons})
    commands = [redact_text(quote_command(step_argv(pip, s))) for s in plan.steps]
    may_touch = {canonicalize_name(c.name) for c in impact.changes} | plan.uninstalls
    snap = snapshot.create(target, facts, reasons, commands, pip.break_system, sorted(may_touch))
    replaced = {canonicalize_name(c.name) for c in impact.changes if c.old is not None}
    progress.note(f"snapshot {snap.id}: {len(snap.data['distributions'])} distributions recorded"
                  + (f", repacking {', '.join(sorted(replaced | plan.uninstalls))}" if replaced | plan.uninstalls else ""))
    try:
        failed = snapshot.stash(snap, target, replaced | plan.uninstalls)
    except KeyboardInterrupt:
        snap.update(outcome=f"{NOT_STARTED}: interrupted while taking the snapshot")
        return Outcome(NOT_STARTED, "interrupted while taking the snapshot; nothing was changed", snap)
    if failed:
        why = "; ".join(f"{name} {reason}" for name, reason in sorted(failed.items()))
        snap.update(outcome=f"{NOT_STARTED}: {why}")
        return Outcome(NOT_STARTED, f"cannot keep a copy to roll back to: {why}. Nothing was changed", snap)
    try:
        for index, step in enumerate(plan.steps, 1):
            argv = step_argv(pip, step)
            progress.step(index, len(plan.steps), step_title(step), argv)
            snap.journal(str(index), step_title(step), commands[index - 1], "running")
            result = pip.run(argv)
            snap.journal(str(index), step_title(step), commands[index - 1], "done" if result.ok else "failed")
            progress.step_done(result.ok, result.seconds, "" if result.ok else errors_of(result))
            if not result.ok:
                return _roll_back(snap, pip, target, f"step {index} ({step_title(step)}) failed", progress)
        progress.note("checking the environment again ...")
        snap.journal("check", "check the environment again", "", "running")
        after = recheck()
        snap.journal("check", "check the environment again", "", "done")
    except KeyboardInterrupt:
        return _roll_back(snap, pip, target, "interrupted (Ctrl-C)", progress)
    worse = new_errors(before, after)
    if worse:
        outcome = _roll_back(snap, pip, target, "the check after applying found new errors: " + "; ".join(worse), progress)
        outcome.after = after
        return outcome
    try:
        extra, missing = snapshot.differences(snap, snapshot.current_distributions(target))
    except payload.ProbeFailed:  # the re-check listed them a moment ago; keep the plan's names
        extra, missing = [(name, "") for name in replaced | plan.uninstalls], []
    snap.update(outcome=APPLIED, touched=sorted({name for name, _ in extra + missing}))
    return Outcome(APPLIED, f"applied; undo with `tbdoctor fix --rollback {snap.id}`", snap, after=after)
