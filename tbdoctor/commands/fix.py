"""``tbdoctor fix``: check, plan from the findings' fixes, ask pip, then apply safely.

Refuses (exit 1, nothing changed) an externally-managed or system interpreter
without ``--break-system-packages``, a plan pip cannot resolve, and a plan
whose result would violate another installed distribution's requirement.
``--history`` lists snapshots; ``--rollback [ID]`` restores one; ``--prune``
deletes old ones (as every successful fix does). A fix and a rollback hold the
environment's lock (``envlock``): a second one on the same target waits, then
names the holder and exits 1.
"""

from __future__ import annotations

import sys

from packaging.utils import canonicalize_name
from rich.text import Text

from tbdoctor import apply as apply_mod, envlock, impact as impact_mod, pipcmd, payload, plan as plan_mod, profiles, snapshot
from tbdoctor.diagnose import diagnose
from tbdoctor.errors import EXIT_OK, EXIT_PROBLEMS, UsageError
from tbdoctor.facts import redact_text
from tbdoctor.findings import ERROR, Report
from tbdoctor.plan import INSTALL, project_key
from tbdoctor.render import console as console_mod, fixplan
from tbdoctor.rules.common import installed
from tbdoctor.target import Target, choose

EXIT_INTERRUPTED = 130


def _check(args) -> Report:
    """A fresh check; its install commands are checked by pip with the sources this fix uses."""
    return diagnose(args.python, (), args.timeout, ignore=args.ignore, use_cache=False, pip_sources=_sources(args))


def refusal(facts: dict, python: str) -> str | None:
    """Why tbdoctor must not change this interpreter's packages (None: it may)."""
    py = facts.get("python") or {}
    if py.get("externally_managed"):
        return (f"{python} is externally managed (PEP 668 marker {py['externally_managed']}): "
                "its packages belong to the system's package manager")
    if py.get("env_kind") == "system":
        return f"{python} is a system interpreter, not a venv, conda or pyenv environment"
    return None


def _resolve(pip: pipcmd.Pip, the_plan: plan_mod.Plan) -> list[dict]:
    """pip's dry run of every install step. A project the plan removes and asks for again
    is resolved as a fresh install (--force-reinstall --no-deps): that is what pip will do."""
    resolved: dict[str, dict] = {}
    for step in the_plan.steps:
        if step.kind != INSTALL:
            continue
        for item in pip.dry_run(step.packages, step.options):
            resolved[project_key(item["name"])] = item
        again = [r for r in step.packages if project_key(r) in the_plan.uninstalls]
        if again:
            for item in pip.dry_run(again, step.options + ("--force-reinstall", "--no-deps")):
                resolved[project_key(item["name"])] = item
    return list(resolved.values())


def _torch_source(out, facts: dict, sources: tuple[str, ...]) -> tuple[str, ...]:
    """On an NVIDIA machine, where torch must come from (unless the command line chose
    the sources): PyTorch's index for the CUDA variant of the installed torch's release."""
    machine = profiles.Machine.from_gpu_facts(facts.get("gpu"), (facts.get("python") or {}).get("platform", sys.platform))
    if machine.hardware != "nvidia" or sources:
        return ()
    torch = installed(facts).get("torch")
    try:
        url, why = profiles.cuda_index(machine, torch["version"] if torch else None)
    except profiles.ProfileError:
        return ()  # no CUDA build runs here: the gpu findings say so; pip's own choice stands
    _say(out, f"torch for this machine: {url} ({why})", "dim")
    return ("--index-url", url)


def _say(out, text: str, style: str = "") -> None:
    out.print(Text(redact_text(text), style=style))  # no index credentials on screen


def _sources(args) -> tuple[str, ...]:
    return pipcmd.source_options(args.index_url, args.extra_index_url, args.find_links, args.constraint, args.no_index)


def run(args) -> int:
    out = console_mod.make_console()
    if args.history:
        fixplan.history(out, snapshot.all_snapshots())
        return EXIT_OK
    if args.keep < 1 or args.max_mb <= 0:
        raise UsageError("--keep must be at least 1 and --max-mb above 0")
    if args.prune:
        python = choose(args.python).python if args.python else None
        fixplan.pruned(out, snapshot.prune(python, args.keep, int(args.max_mb * 1e6)), args.keep, args.max_mb)
        return EXIT_OK
    if args.rollback is not None:
        snap = snapshot.find(args.rollback or None, choose(args.python).python if args.python else None)
        return _locked(out, snap.data["target"]["python"], lambda: _rollback(args, out, snap))
    if args.dry_run:  # changes nothing: needs no lock
        return _fix(args, out)
    return _locked(out, choose(args.python).python, lambda: _fix(args, out))


def _locked(out, python: str, work) -> int:
    try:
        with envlock.held(python):
            return work()
    except envlock.Busy as exc:
        fixplan.refusal(out, f"{exc}; nothing was changed")
        return EXIT_PROBLEMS


def _fix(args, out) -> int:
    before = _check(args)
    facts = before.facts
    python = before.target["python"]
    if not facts.get("python") or not facts.get("packages"):
        fixplan.refusal(out, f"cannot list what is installed in {python}; nothing was changed",
                        hint=f"See `tbdoctor check --python {python}`.")
        return EXIT_PROBLEMS
    _say(out, f"tbdoctor fix · target {python}")
    for old in snapshot.all_snapshots():
        if old.data["target"]["python"] == python and old.data.get("outcome") == snapshot.PENDING:
            _say(out, f"! An earlier fix of this environment did not finish (snapshot {old.id}); "
                      f"`tbdoctor fix --rollback {old.id}` undoes what it changed.", "yellow")
    the_plan = plan_mod.build(before.findings, args.only or None, _torch_source(out, facts, _sources(args)))
    pip = pipcmd.Pip.for_facts(facts, _sources(args), args.break_system_packages)
    fixplan.plan(out, the_plan, [apply_mod.step_title(s) for s in the_plan.steps], pip.description)
    if not the_plan.steps:
        pending = bool(the_plan.manual) or before.failed()
        _say(out, "Nothing tbdoctor can apply." + (" See `tbdoctor check` for the remaining problems." if pending else
                                                   " No problems found."))
        return EXIT_PROBLEMS if pending else EXIT_OK
    why_not = None if args.break_system_packages else refusal(facts, python)
    if why_not:
        fixplan.refusal(out, why_not, hint=(
            f"Create a separate environment instead:  tbdoctor setup ./tbdoctor-env --python {python}\n"
            f"To change it anyway (it can break tools of your system):  "
            f"tbdoctor fix --python {python} --break-system-packages"))
        return EXIT_PROBLEMS
    if pip.target_pip is None and not pip.use_uv and the_plan.steps[0].kind != plan_mod.BOOTSTRAP:
        fixplan.refusal(out, f"{python} has no pip, and uv is not on PATH to run `uv pip` for it",
                        hint=f"Put uv on PATH, or install pip into it:  {python} -m ensurepip --upgrade")
        return EXIT_PROBLEMS
    try:
        impact = impact_mod.assess(facts, the_plan, _resolve(pip, the_plan))
    except pipcmd.PipError as exc:
        fixplan.refusal(out, f"{exc}; nothing was changed", exc.tail.splitlines())
        return EXIT_PROBLEMS
    fixplan.impact(out, impact)
    if impact.breaks:
        fixplan.refusal(out, "the plan would break other installed packages; nothing was changed", impact.breaks,
                        hint="Fix these by hand, or leave their findings out with --only ID.")
        return EXIT_PROBLEMS
    target = Target(python, before.target["chosen_by"], tuple(int(p) for p in before.target["version"].split(".")))
    if _unrestorable(out, target, impact, the_plan):
        return EXIT_PROBLEMS
    if args.dry_run:
        _say(out, "Dry run: nothing was changed.")
        return EXIT_PROBLEMS
    if not args.yes and not _confirmed(out):
        return EXIT_PROBLEMS
    outcome = apply_mod.apply(the_plan, impact, pip, target, facts, before, lambda: _check(args),
                              fixplan.StepPrinter(out))
    return _report(out, outcome, the_plan, args)


def _unrestorable(out, target: Target, impact: impact_mod.Impact, the_plan: plan_mod.Plan) -> bool:
    """Refuse a plan that removes or replaces a distribution no snapshot can give back exactly."""
    replaced = {canonicalize_name(c.name) for c in impact.changes if c.old is not None} | the_plan.uninstalls
    try:
        cannot = snapshot.unrestorable(target, replaced)
    except payload.ProbeFailed:
        return False  # taking the snapshot will try again and stop if it fails
    if cannot:
        fixplan.refusal(out, "the plan would remove or replace what tbdoctor cannot put back exactly; nothing was changed",
                        [f"{name} {why}" for name, why in sorted(cannot.items())],
                        hint="Change these by hand, or leave their findings out with --only ID.")
    return bool(cannot)


def _confirmed(out) -> bool:
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        _say(out, "Pending: run again with --yes to apply this plan (or on a terminal to be asked).")
        return False
    from rich.prompt import Confirm
    return Confirm.ask("Apply this plan?", console=out, default=False)


def _report(out, outcome: apply_mod.Outcome, the_plan: plan_mod.Plan, args) -> int:
    only = args.only or None
    if outcome.after is not None and outcome.status == apply_mod.APPLIED:
        console_mod.render(outcome.after, out)
    if outcome.status == apply_mod.APPLIED:
        _say(out, f"✓ Fix {outcome.message}.")
        old = snapshot.prune(outcome.snapshot.data["target"]["python"], args.keep, int(args.max_mb * 1e6))
        if old:
            _say(out, f"Removed {len(old)} old snapshot(s) of this environment: {', '.join(s.id for s in old)}", "dim")
        if the_plan.manual:
            _say(out, f"{len(the_plan.manual)} manual step(s) above remain for you to do.")
        left = [f for f in outcome.after.findings if f.status == ERROR and plan_mod.selected(f, only)]
        return EXIT_PROBLEMS if left else EXIT_OK  # with --only, the errors it was asked to fix
    _say(out, f"✗ Fix {outcome.status}: {outcome.message}.", "red bold")
    if outcome.restore is not None and outcome.restore.ok:
        done = [f"removed {x}" for x in outcome.restore.removed] + [f"reinstalled {x}" for x in outcome.restore.reinstalled]
        _say(out, "  Restored: " + ("; ".join(done) or "nothing had changed")
             + ". The installed distributions match the snapshot again.")
    elif outcome.restore is not None:
        fixplan.restore_failed(out, outcome.snapshot, outcome.restore)
    if outcome.status == apply_mod.ROLLED_BACK and "interrupted" in outcome.message:
        return EXIT_INTERRUPTED
    return EXIT_PROBLEMS


def _rollback(args, out, snap: snapshot.Snapshot) -> int:
    target = choose(snap.data["target"]["python"])
    current = diagnose(target.python, (), args.timeout, use_cache=False, pip_sources=())
    pip = pipcmd.Pip.for_facts(current.facts, (), bool(snap.data.get("break_system_packages")))
    what = sorted(set(snap.data.get("touched") or ()) | set(snap.data.get("may_touch") or ())
                  | {w["name"].lower() for w in snap.data.get("wheels") or ()})
    scope = {project_key(n) for n in what}
    if snap.data.get("outcome") == snapshot.PENDING:  # the fix never finished: undo every difference
        scope = None
        _say(out, f"Snapshot {snap.id} is pending: its fix was stopped before it finished. "
                  "Every distribution that differs from it is restored.")
    _say(out, f"Restoring snapshot {snap.id} ({snap.data['created']}) of {target.python}: "
              f"{', '.join(what) or 'nothing was changed by it'}")
    restored = snapshot.restore(snap, pip, target, scope)
    for line in restored.removed:
        _say(out, f"  removed {line}")
    for line in restored.reinstalled:
        _say(out, f"  reinstalled {line}")
    if restored.ok:
        snap.update(outcome=f"rolled back by --rollback (was: {snap.data.get('outcome')})")
        _say(out, f"✓ Restored snapshot {snap.id}.")
        return EXIT_OK
    snap.update(outcome=f"{snapshot.INCOMPLETE}: --rollback failed: " + "; ".join(restored.unrestored + restored.errors))
    fixplan.restore_failed(out, snap, restored)
    return EXIT_PROBLEMS
