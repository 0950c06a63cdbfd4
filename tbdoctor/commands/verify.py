"""``tbdoctor verify``: run the reference job in the target, render, map to an exit code.

Also ``after_check``, the second half of ``tbdoctor check --verify``.
Leaves nothing behind: the job and TensorBoard get a private TMPDIR, and it
and the default logdir (both under the system temp dir) are removed on every
exit path unless --logdir or --keep asks to keep the logdir.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import sys
import tempfile
import threading

from tbdoctor import __version__, files, redact, target as target_mod
from tbdoctor.errors import EXIT_OK, EXIT_PROBLEMS, UsageError
from tbdoctor.verify import multinode
from tbdoctor.verify.runner import Options, verify

FRAMEWORKS = {"torch": ("torch",), "tf": ("tf",), "all": ("torch", "tf")}


def options_from(args) -> Options:
    """Validate the flags (bad values are usage errors, exit 2)."""
    for name, value in (("lr", args.lr), ("steps", args.steps), ("nproc", args.nproc),
                        ("nnodes", args.nnodes), ("rdzv-timeout", args.rdzv_timeout),
                        ("server-timeout", args.server_timeout), ("timeout", args.timeout)):
        if value is not None and not 0 < value < float("inf"):  # also refuses NaN
            raise UsageError(f"--{name} {value:g}: must be a positive number")
    for name in ("nproc", "nnodes", "node_rank", "rdzv_endpoint", "rdzv_id", "rdzv_timeout"):
        if getattr(args, name) is not None and not args.distributed:
            raise UsageError(f"--{name.replace('_', '-')} needs --distributed")
    nodes = multinode.settings(args.nnodes, args.node_rank, args.rdzv_endpoint, args.rdzv_id,
                               args.rdzv_timeout or 60.0, dict(os.environ)) if args.distributed else None
    if args.steps is not None and args.steps > 1000:
        raise UsageError(f"--steps {args.steps}: at most 1000 (TensorBoard samples longer scalar series)")
    if args.port is not None and not 0 < args.port < 65536:
        raise UsageError(f"--port {args.port}: not a TCP port (1-65535)")
    if args.distributed and args.framework == "tf":
        raise UsageError("--distributed runs the PyTorch job under torchrun: use --framework torch or all")
    return Options(
        logdir=args.logdir, keep=args.keep, device=args.device, frameworks=FRAMEWORKS[args.framework],
        server=not args.no_server, serve=args.serve, port=args.port,
        server_timeout=args.server_timeout or 60.0, timeout=args.timeout or 600.0,
        lr=args.lr, steps=args.steps, seed=args.seed, distributed=args.distributed, nproc=args.nproc or 2, nodes=nodes,
        browser=not args.no_browser,
    )


@contextlib.contextmanager
def _children_tmp(folder: str):
    """The job's and TensorBoard's temporary files (TensorBoard's .tensorboard-info,
    torchrun's) go to ``folder`` while the block runs."""
    names = ("TMPDIR", "TEMP", "TMP")
    saved = {name: os.environ.get(name) for name in names}
    os.makedirs(folder, exist_ok=True)
    os.environ.update({name: folder for name in names})
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def execute(chosen: target_mod.Target, options: Options, as_json: bool, verbose: bool, extra: dict | None = None):
    """Run and print; returns (outcome, exit code). ``extra`` is merged into the JSON."""
    with files.temp_dir("tbdoctor-verify-") as scratch, _children_tmp(os.path.join(scratch, "tmp")):
        kept = bool(options.logdir or options.keep)
        if not options.logdir:
            logdir = tempfile.mkdtemp(prefix="tbdoctor-verify-") if options.keep else os.path.join(scratch, "logdir")
            options = dataclasses.replace(options, logdir=logdir)
        if as_json:
            outcome, live = verify(chosen, options)
        else:  # each phase on screen as it runs, then the summary
            from tbdoctor.render import console as console_mod, live as live_mod, verify_console
            out = console_mod.make_console()
            verify_console.header(chosen.to_dict(), out, __version__)
            lines = live_mod.PhaseLines(out, several=len(options.frameworks) > 1)
            try:
                outcome, live = verify(chosen, options, lines)
            finally:
                lines.close()
        outcome.logdir_kept = kept
        code = EXIT_OK if outcome.passed else EXIT_PROBLEMS
        try:
            shown = redact.value(outcome)  # before layout: a table cell never splits a secret
            if as_json:
                data = dict(extra or {}, **({"verify": shown.to_dict()} if extra is not None else shown.to_dict()))
                sys.stdout.write(json.dumps(redact.value(data), indent=2) + "\n")
            else:
                verify_console.render(shown, out, verbose, serving=live is not None)
            if live is not None:
                _serve(live, as_json)
        finally:
            if live is not None:
                live.stop()
    return outcome, code


def _serve(live, as_json: bool) -> None:
    out = sys.stderr if as_json else sys.stdout
    try:  # a Ctrl-C as soon as the line is read (before the wait begins) also only ends serving
        print(f"TensorBoard is serving {live.url} (pid {live.bg.pid}); press Ctrl-C to stop it", file=out, flush=True)
        while live.bg.exit_code() is None:
            threading.Event().wait(0.5)
        print(f"TensorBoard exited with status {live.bg.exit_code()}", file=out, flush=True)
    except KeyboardInterrupt:
        print("stopping TensorBoard", file=out, flush=True)


def run(args) -> int:
    options = options_from(args)
    chosen = target_mod.choose(args.python)
    _outcome, code = execute(chosen, options, args.json, args.verbose)
    return code


def after_check(args, report, check_code: int, strict: bool) -> int:
    """``check --verify``: the check's report, then the job; one combined exit code."""
    if args.facts:
        raise UsageError("--verify runs the job in a live interpreter: it cannot be combined with --facts")
    from tbdoctor import render
    chosen = target_mod.Target.from_dict(report.target)  # the interpreter the check just diagnosed
    if args.json:
        from tbdoctor.render import json_report
        _outcome, code = execute(chosen, Options(), True, False, extra=json_report.to_dict(render.redacted(report)))
    else:
        render.emit(report, args.format, args.output, strict=strict, verbose=args.verbose)
        print(flush=True)
        _outcome, code = execute(chosen, Options(), False, args.verbose)
    return max(check_code, code)
