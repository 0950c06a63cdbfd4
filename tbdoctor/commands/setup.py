"""``tbdoctor setup``: build a known-good environment from a profile in ``envs/``.

Venv (uv when on PATH, else ``python -m venv`` and an upgraded pip), the
profile's packages under the user's pip configuration plus the command line's
sources, a lock file of exact versions, then ``check`` and ``verify`` (the
profile's reference job) inside the new environment, and the activation command. Asks on a terminal; ``--yes`` never asks.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from packaging.version import Version
from rich.text import Text

from tbdoctor import pipcmd, probe, profiles as profiles_mod, provision
from tbdoctor.diagnose import diagnose
from tbdoctor.errors import EXIT_OK, EXIT_PROBLEMS, UsageError
from tbdoctor.facts import redact_text
from tbdoctor.findings import quote_command
from tbdoctor.render import console as console_mod, fixplan
from tbdoctor.target import Target, choose

_SOURCE_KEYS = ("index-url", "extra-index-url", "find-links", "no-index")
_SOURCE_ENV = ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS", "PIP_NO_INDEX")
_UV_SOURCE_ENV = ("UV_INDEX", "UV_DEFAULT_INDEX", "UV_INDEX_URL", "UV_EXTRA_INDEX_URL", "UV_FIND_LINKS", "UV_NO_INDEX")


def _say(out, text: str, style: str = "") -> None:
    out.print(Text(redact_text(text), style=style))  # no index credentials on screen


def _probe(target: Target, names: tuple[str, ...], timeout: float) -> dict:
    return probe.collect(target, tuple(p for p in probe.PROBES if p.name in names), timeout)


def own_sources(args, python_facts: dict | None, use_uv: bool) -> str:
    """Which of the user's own package sources are in force ('' when none):
    they replace a profile's index hint (an unreachable extra index would only slow pip down).
    uv reads its own settings (UV_*), not pip's configuration."""
    if args.index_url or args.find_links or args.no_index:
        return "the --index-url/--find-links/--no-index you gave"
    if use_uv:
        env = sorted(k for k in os.environ if k in _UV_SOURCE_ENV)
        return "your uv settings (" + ", ".join(env) + ")" if env else ""
    pip = (python_facts or {}).get("pip") or {}
    keys = sorted({k.split(".", 1)[-1] for k in (pip.get("config") or {})} & set(_SOURCE_KEYS))
    env = sorted(k for k in ((python_facts or {}).get("environ") or {}) if k in _SOURCE_ENV)
    if keys or env:
        return "your pip configuration (" + ", ".join(keys + env) + ")"
    return ""


def run(args) -> int:
    out = console_mod.make_console()
    timeout = args.timeout or probe.DEFAULT_TIMEOUT
    all_profiles = _load_profiles()
    base = choose(args.python or shutil.which("python3") or sys.executable)
    facts = _probe(base, ("python", "gpu"), timeout)
    machine = profiles_mod.Machine.from_gpu_facts(facts.get("gpu"), sys.platform)
    sources = pipcmd.source_options(args.index_url, args.extra_index_url, args.find_links, args.constraint,
                                    args.no_index)
    use_uv = shutil.which("uv") is not None
    own = own_sources(args, facts.get("python"), use_uv)
    if use_uv and not own:  # uv reads UV_* settings only: pip's sources are passed on, said plainly
        passed = pipcmd.config_sources(facts.get("python"))
        if passed:
            sources = passed + sources
            own = "your pip configuration, passed on to uv (uv does not read it: " + " ".join(passed) + ")"
    if args.list:
        _list(out, all_profiles, machine, own)
        return EXIT_OK
    interactive = not args.yes and sys.stdin.isatty() and sys.stdout.isatty()
    name = profiles_mod.auto(machine) if args.profile in (None, "auto") else args.profile
    directory = args.dir or ".venv"
    if interactive:
        from rich.prompt import Prompt
        name = Prompt.ask("Profile", choices=sorted(all_profiles), default=name, console=out)
        directory = Prompt.ask("Directory", default=directory, console=out)
        picked = Prompt.ask("Python", default=base.python, console=out)
        base = choose(picked) if picked != base.python else base
    if name not in all_profiles:
        raise UsageError(f"--profile {name}: no such profile (choose from auto, {', '.join(sorted(all_profiles))})")
    profile = all_profiles[name]
    version = ".".join(map(str, base.version))
    if Version(version) not in profile.python:
        raise UsageError(f"--python {base.python}: Python {version} does not satisfy profile {name}'s "
                         f"python {profile.python}")
    path = Path(directory).expanduser().absolute()
    doomed = provision.removable(path, args.force)
    try:
        steps = profiles_mod.install_steps(profile, machine, own)
    except profiles_mod.ProfileError as exc:
        raise UsageError(str(exc)) from None
    _summary(out, profile, machine, base, path, steps, doomed, use_uv)
    if not args.yes:
        if not interactive:
            _say(out, "Pending: run again with --yes to build it (or on a terminal to be asked).")
            return EXIT_PROBLEMS
        from rich.prompt import Confirm
        if not Confirm.ask("Build this environment?", console=out, default=True):
            return EXIT_PROBLEMS
    return _build(out, profile, base, path, steps, doomed, use_uv, sources, timeout)


def _cuda_refusal(pip: pipcmd.Pip, steps) -> str | None:
    """Why a CPU profile must not install what pip resolves for ``steps`` (a CUDA torch,
    nvidia-* wheels), or None; asked with ``pip install --dry-run --report``."""
    for step in steps:
        try:
            items = pip.dry_run(step.packages, step.options)
        except pipcmd.PipError as exc:
            return f"pip cannot install {' '.join(step.packages)}: {exc.tail or exc}"
        cuda = [f"{i['name']} {i['version']}" for i in items
                if i["name"].lower().startswith("nvidia-") or "+cu" in i["version"] or "+rocm" in i["version"]]
        if cuda:
            return (f"this is a CPU profile, but {' '.join(step.packages)} resolves to CUDA builds "
                    f"({', '.join(cuda)}) with the package sources in force")
    return None


def _load_profiles() -> dict:
    try:
        return profiles_mod.load_all()
    except profiles_mod.ProfileError as exc:  # a bundled file is broken: tbdoctor's own bug
        raise RuntimeError(str(exc)) from None


def _list(out, all_profiles: dict, machine, own: str) -> None:
    _say(out, f"Profiles (this machine: {machine.describe()}; auto picks {profiles_mod.auto(machine)})", "bold")
    for name, profile in sorted(all_profiles.items()):
        _say(out, f"{name}: {profile.description} [python {profile.python or 'any'}, hardware {profile.hardware}]")
        try:
            for step in profiles_mod.install_steps(profile, machine, own):
                _say(out, "    " + quote_command(["pip", "install", *step.options, *step.packages]))
                if step.note:
                    _say(out, f"      ({step.note})", "dim")
        except profiles_mod.ProfileError as exc:
            _say(out, f"    not for this machine: {exc}", "yellow")


def _summary(out, profile, machine, base: Target, path: Path, steps, doomed, use_uv: bool) -> None:
    _say(out, f"tbdoctor setup · profile {profile.name} ({profile.description})", "bold")
    _say(out, f"  machine:   {machine.describe()}")
    _say(out, f"  python:    {base.python} ({'.'.join(map(str, base.version))})")
    _say(out, f"  directory: {path}" + (" (rebuilt: removes " + ", ".join(p.name for p in doomed) + ")" if doomed else ""))
    _say(out, f"  venv by:   {'uv venv + uv pip' if use_uv else 'python -m venv + pip'}")
    for step in steps:
        _say(out, "  install:   " + quote_command([*step.options, *step.packages]))
        if step.note:
            _say(out, f"             {step.note}", "dim")


def _build(out, profile, base: Target, path: Path, steps, doomed, use_uv, sources, timeout) -> int:
    python = provision.venv_python(path)
    pip = pipcmd.Pip(str(python), use_uv, None, sources)
    actions = [("create the venv", provision.create_argv(base.python, path, use_uv), True)]
    if not use_uv:
        actions.append(("upgrade pip", [str(python), "-m", "pip", "install", "--upgrade", *sources, "pip"], False))
    actions += [(f"install {' '.join(s.packages)}", pip.install_argv(s.packages, s.options), True) for s in steps]
    printer = fixplan.StepPrinter(out)
    provision.remove(doomed)
    venv_steps = 1 if use_uv else 2
    for index, (title, argv, required) in enumerate(actions, 1):
        if index == venv_steps + 1 and profile.hardware == "cpu":
            refused = _cuda_refusal(pipcmd.Pip(str(python), False, None, sources), steps)
            if refused:
                _say(out, f"✗ Refused: {refused}. Nothing was installed; the empty venv is in {path}.", "red bold")
                _say(out, "  Point pip at CPU builds, e.g.  --index-url https://download.pytorch.org/whl/cpu "
                          "(or --find-links to a folder of +cpu wheels), then run again with --force.")
                return EXIT_PROBLEMS
        printer.step(index, len(actions), title, argv)
        result = pip.run(argv)
        printer.step_done(result.ok, result.seconds, "" if result.ok else pipcmd.errors_of(result))
        if not result.ok and required:
            _say(out, f"✗ Setup failed at step {index} ({title}). The partial environment is in {path}; "
                      "fix the cause and run again with --force to rebuild it.", "red bold")
            return EXIT_PROBLEMS
        if not result.ok:
            printer.note("continuing with the venv's own pip")
    freeze = pip.run(pip.freeze_argv(), timeout=pipcmd.QUERY_TIMEOUT)
    used = tuple(dict.fromkeys(sources + tuple(o for s in steps for o in s.options)))
    lock = provision.write_lock(path, profile.name, ".".join(map(str, base.version)), used, freeze.stdout)
    printer.note(f"wrote {lock} ({len([ln for ln in freeze.stdout.splitlines() if '==' in ln])} exact versions)")
    report = diagnose(str(python), (), timeout, use_cache=False)
    console_mod.render(report, out)
    _say(out, "")
    from tbdoctor.commands import verify as verify_cmd
    from tbdoctor.verify.runner import Options
    _outcome, verified = verify_cmd.execute(choose(str(python)), Options(frameworks=verify_cmd.FRAMEWORKS[profile.verify]),
                                            False, False)
    if report.failed() or verified != EXIT_OK:
        _say(out, f"✗ The new environment in {path} has problems (above).", "red bold")
        return EXIT_PROBLEMS
    _say(out, f"✓ Environment ready. Activate it with:  {provision.activation(path)}", "green")
    return EXIT_OK
