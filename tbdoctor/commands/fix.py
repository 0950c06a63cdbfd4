"""``tbdoctor fix``: check, plan from the findings' fixes, ask pip, then apply safely.

Refuses (exit 1, nothing changed) an externally-managed or system interpreter
without ``--break-system-packages``, a plan pip cannot resolve, and a plan
whose result would violate another installed distribution's requirement.
``--history`` lists snapshots; ``--rollback [ID]`` restores one.
"""

from __future__ import annotations

import argparse
import sys

from rich.text import Text

from tbdoctor import apply as apply_mod, impact as impact_mod, pipcmd, plan as plan_mod, profiles, snapshot
from tbdoctor.commands.check import build_report
from tbdoctor.errors import EXIT_OK, EXIT_PROBLEMS
from tbdoctor.facts import redact_text
from tbdoctor.findings import ERROR, Report
from tbdoctor.plan import INSTALL, project_key
from tbdoctor.render import console as console_mod, fixplan
from tbdoctor.rules.common import installed
from tbdoctor.target import Target, choose

EXIT_INTERRUPTED = 130


def _check(args) -> Report:
    """A fresh check; its install commands are checked by pip with the sources this fix uses."""
    sources = _sources(args) if hasattr(args, "index_url") else ()
    return build_report(argparse.Namespace(python=args.python, only=[], facts=None, timeout=args.timeout,
                                           save_facts=None, ignore=list(args.ignore), quick=False, no_cache=True,
                                           pip_sources=sources))


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
    if args.rollback is not None:
        return _rollback(args, out)
    before = _check(args)
    facts = before.facts
    python = before.target["python"]
    if not facts.get("python") or not facts.get("packages"):
        fixplan.refusal(out, f"cannot list what is installed in {python}; nothing was changed",
                        hint=f"See `tbdoctor check --python {python}`.")
        return EXIT_PROBLEMS
    _say(out, f"tbdoctor fix · target {python}")
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
    if args.dry_run:
        _say(out, "Dry run: nothing was changed.")
        return EXIT_PROBLEMS
    if not args.yes and not _confirmed(out):
        return EXIT_PROBLEMS
    target = Target(python, before.target["chosen_by"], tuple(int(p) for p in before.target["version"].split(".")))
    outcome = apply_mod.apply(the_plan, impact, pip, target, facts, before, lambda: _check(args),
                              fixplan.StepPrinter(out))
    return _report(out, outcome, the_plan, args.only or None)


def _confirmed(out) -> bool:
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        _say(out, "Pending: run again with --yes to apply this plan (or on a terminal to be asked).")
        return False
    from rich.prompt import Confirm
    return Confirm.ask("Apply this plan?", console=out, default=False)


def _report(out, outcome: apply_mod.Outcome, the_plan: plan_mod.Plan, only: list[str] | None) -> int:
    if outcome.after is not None and outcome.status == apply_mod.APPLIED:
        console_mod.render(outcome.after, out)
    if outcome.status == apply_mod.APPLIED:
        _say(out, f"✓ Fix {outcome.message}.")
        if the_plan.manual:
            _say(out, f"{len(the_plan.manual)} manual step(s) above remain for you to do.")
        left = [f for f in outcome.after.findings if f.status == ERROR and plan_mod.selected(f, only)]
        return EXIT_PROBLEMS if left else EXIT_OK  # with --only, the errors it was asked to fix
    _say(out, f"✗ Fix {outcome.status}: {outcome.message}.", "red bold")
    if outcome.restore is not None and outcome.restore.ok:
        done = [f"removed {x}" for x in outcome.restore.removed] + [f"reinstalled {x}" for x in outcome.restore.reinstalled]
        _say(out, "  Restored: " + ("; ".join(done) or "nothing had changed")
             + ". The installed distributions match the snapshot again.")
    if outcome.status == apply_mod.ROLLED_BACK and "interrupted" in outcome.message:
        return EXIT_INTERRUPTED
    return EXIT_PROBLEMS


def _rollback(args, out) -> int:
    python = choose(args.python).python if args.python else None
    snap = snapshot.find(args.rollback or None, python)
    target = choose(snap.data["target"]["python"])
    current = _check(argparse.Namespace(python=target.python, timeout=args.timeout, ignore=[]))
    pip = pipcmd.Pip.for_facts(current.facts, (), bool(snap.data.get("break_system_packages")))
    scope = set(snap.data.get("touched") or ()) | {w["name"].lower() for w in snap.data.get("wheels") or ()}
    _say(out, f"Restoring snapshot {snap.id} ({snap.data['created']}) of {target.python}: "
              f"{', '.join(sorted(scope)) or 'nothing was changed by it'}")
    restored = snapshot.restore(snap, pip, target, {project_key(n) for n in scope})
    for line in restored.removed:
        _say(out, f"  removed {line}")
    for line in restored.reinstalled:
        _say(out, f"  reinstalled {line}")
    if restored.ok:
        snap.update(outcome=f"{snap.data.get('outcome')}; rolled back by --rollback")
        _say(out, f"✓ Restored snapshot {snap.id}.")
        return EXIT_OK
    for line in restored.unrestored + restored.errors:
        _say(out, f"  ✗ {line}", "red")
    _say(out, f"✗ Restoring snapshot {snap.id} was incomplete; its wheels are in {snap.wheels}", "red bold")
    return EXIT_PROBLEMS
