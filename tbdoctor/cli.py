"""Command-line wiring: parse arguments, call one command, map the result to an exit code.

All argparse definitions live here; each command's work is in
``tbdoctor/commands/<name>.py``, imported only when that command runs so that
``--help`` and ``--version`` stay fast. Exit codes: errors.py.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import threading
import traceback

from tbdoctor import __version__, redact, tables
from tbdoctor.errors import EXIT_INTERNAL, EXIT_USAGE, ISSUES_URL, UsageError
from tbdoctor.render import FORMATS


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2, instead of usage + message
        raise UsageError(f"{message} (see `{self.prog} --help`)")


def _add_target(p: argparse.ArgumentParser) -> None:
    p.add_argument("--python", metavar="PATH",
                   help="interpreter or environment directory to diagnose (default: $VIRTUAL_ENV, "
                        "$CONDA_PREFIX, python3 on PATH, then tbdoctor's own)")


def _check_arguments(p: argparse.ArgumentParser) -> None:
    _add_target(p)
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="print the tbdoctor.report/1 JSON object only (= --format json)")
    fmt.add_argument("--format", choices=FORMATS, default="rich",
                     help="report format (default rich: the console report)")
    p.add_argument("--output", metavar="FILE",
                   help="write the report in --format to FILE; the console report still goes to stdout")
    p.add_argument("--policy", metavar="FILE",
                   help="policy file (default: ./tbdoctor.toml, else [tool.tbdoctor] in ./pyproject.toml)")
    p.add_argument("-v", "--verbose", action="store_true", help="also show passing checks, details and probe times")
    p.add_argument("--strict", action="store_true", help="warnings fail the run too (exit 1)")
    p.add_argument("--ignore", nargs="+", action="extend", metavar="ID", default=[],
                   help="finding ids (or glob patterns such as 'python.*') to skip")
    p.add_argument("--only", nargs="+", action="extend", metavar="SECTION", default=[],
                   help="report only these sections (python, pip, gpu, cuda, torch, ...)")
    p.add_argument("--timeout", type=float, metavar="SECONDS",
                   help="time limit for each probe (default 90; probes run in parallel)")
    p.add_argument("--quick", action="store_true",
                   help="skip the framework imports (metadata, pip, Python and GPU only); the report lists what it skipped")
    p.add_argument("--no-cache", action="store_true",
                   help="probe again even if the environment is unchanged since the last check")
    p.add_argument("--save-facts", metavar="FILE", help="write the probed facts snapshot to FILE")
    p.add_argument("--facts", metavar="FILE", help="re-run the rules on a saved snapshot instead of probing")
    p.add_argument("--verify", action="store_true",
                   help="then run the reference training job (tbdoctor verify); one combined exit code")
    p.add_argument("--logdir", metavar="DIR",
                   help="also read your event files in DIR with TensorBoard's loader (as `tbdoctor logdir`)")


def _verify_arguments(p: argparse.ArgumentParser) -> None:
    _add_target(p)
    p.add_argument("--json", action="store_true", help="print the tbdoctor.verify/1 JSON object only")
    p.add_argument("-v", "--verbose", action="store_true", help="also show the job's notes and output")
    p.add_argument("--logdir", metavar="DIR",
                   help="where the run directory goes, kept (default: a fresh directory under the system temp dir, "
                        "removed on exit)")
    p.add_argument("--keep", action="store_true", help="keep the default logdir (under the system temp dir)")
    p.add_argument("--device", metavar="D", help="cuda, cuda:N, mps or cpu (default: the best available)")
    p.add_argument("--framework", choices=("torch", "tf", "all"), default="torch",
                   help="PyTorch + tensorboardX, TensorFlow + tf.summary, or both (default torch)")
    server = p.add_mutually_exclusive_group()
    server.add_argument("--no-server", action="store_true", help="skip the TensorBoard server phase")
    server.add_argument("--serve", action="store_true", help="leave TensorBoard running and print its URL")
    p.add_argument("--no-browser", action="store_true",
                   help="skip the browser phase (TensorBoard's page in a headless Chromium)")
    p.add_argument("--port", type=int, metavar="N", help="TensorBoard's port on 127.0.0.1 (default: a free one)")
    p.add_argument("--server-timeout", type=float, metavar="SECONDS",
                   help="how long TensorBoard may take to serve the data (default 60)")
    p.add_argument("--timeout", type=float, metavar="SECONDS", help="time limit for each job process (default 600)")
    p.add_argument("--lr", type=float, help="learning rate (default 0.1; a large one makes the loss diverge)")
    p.add_argument("--steps", type=int, help="training steps (default 200, at most 1000)")
    p.add_argument("--seed", type=int, help="seed of the data and the initial weights (default 0)")
    p.add_argument("--distributed", action="store_true",
                   help="run the job with DistributedDataParallel under torchrun (NCCL on GPUs, gloo on CPU)")
    p.add_argument("--nproc", type=int, metavar="N", help="processes for --distributed (default 2)")
    p.add_argument("--nnodes", type=int, metavar="N",
                   help="machines for --distributed, meeting on torchrun's c10d rendezvous (default: Slurm's "
                        "SLURM_NNODES or WORLD_SIZE with MASTER_ADDR when set, else 1)")
    p.add_argument("--node-rank", type=int, metavar="R",
                   help="this machine's rank, 0 to N-1; node 0 hosts the rendezvous (default: SLURM_NODEID or RANK)")
    p.add_argument("--rdzv-endpoint", metavar="HOST:PORT",
                   help="node 0's address (default: Slurm's first node or MASTER_ADDR, port MASTER_PORT or 29400)")
    p.add_argument("--rdzv-id", metavar="ID", help="rendezvous id, the same on every node (default: SLURM_JOB_ID)")
    p.add_argument("--rdzv-timeout", type=float, metavar="SECONDS",
                   help="how long nodes wait for each other and for the endpoint (default 60)")


def _source_arguments(p: argparse.ArgumentParser) -> None:
    """pip source options (added to the user's pip configuration), e.g. for an offline wheelhouse."""
    p.add_argument("--index-url", metavar="URL", help="pip --index-url for every install")
    p.add_argument("--extra-index-url", metavar="URL", action="append", default=[], help="pip --extra-index-url (repeatable)")
    p.add_argument("--find-links", metavar="PATH_OR_URL", action="append", default=[], help="pip --find-links (repeatable)")
    p.add_argument("--constraint", metavar="FILE", action="append", default=[], help="pip --constraint (repeatable)")
    p.add_argument("--no-index", action="store_true", help="pip --no-index: only --find-links sources")


def _fix_arguments(p: argparse.ArgumentParser) -> None:
    _add_target(p)
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--dry-run", action="store_true", help="show the plan and what pip would change; change nothing")
    mode.add_argument("--history", action="store_true", help="list the snapshots taken before each fix")
    mode.add_argument("--rollback", nargs="?", const="", metavar="ID",
                      help="restore a snapshot (default: the newest, for --python's interpreter if given)")
    mode.add_argument("--prune", action="store_true",
                      help="delete old snapshots now (for --python's interpreter if given) and list them")
    p.add_argument("--keep", type=int, default=10, metavar="N",
                   help="snapshots kept per environment after a fix or --prune (default 10)")
    p.add_argument("--max-mb", type=float, default=2000.0, metavar="MB",
                   help="size cap of the kept snapshots per environment (default 2000 MB; the newest is always kept)")
    p.add_argument("--yes", "-y", action="store_true", help="apply without asking")
    p.add_argument("--only", nargs="+", action="extend", metavar="ID", default=[],
                   help="fix only findings with these ids (glob patterns such as 'pip.*')")
    p.add_argument("--ignore", nargs="+", action="extend", metavar="ID", default=[],
                   help="finding ids (or glob patterns) to leave alone")
    p.add_argument("--break-system-packages", action="store_true",
                   help="allow changing an externally-managed (PEP 668) or system interpreter")
    p.add_argument("--timeout", type=float, metavar="SECONDS", help="time limit for each probe (default 90)")
    _source_arguments(p)


def _setup_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("dir", nargs="?", metavar="DIR", help="where to create the venv (default: ./.venv)")
    p.add_argument("--profile", metavar="NAME", help="a profile of envs/, or auto (default: from the hardware)")
    p.add_argument("--python", metavar="PYTHON", help="interpreter to build the venv with (default: python3 on PATH)")
    p.add_argument("--yes", "-y", action="store_true", help="build without asking")
    p.add_argument("--force", action="store_true",
                   help="build in a non-empty DIR (removes only an old venv's own parts, never other files)")
    p.add_argument("--list", action="store_true", help="list the profiles and what each installs on this machine")
    p.add_argument("--timeout", type=float, metavar="SECONDS", help="time limit for each probe (default 90)")
    _source_arguments(p)


def _logdir_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("dir", metavar="DIR", help="the folder you give `tensorboard --logdir` (or an s3:// gs:// hdfs:// URL)")
    _add_target(p)
    p.add_argument("--json", action="store_true", help="print a tbdoctor.logdir/1 JSON object only")
    p.add_argument("-v", "--verbose", action="store_true", help="also show passing checks and details")
    p.add_argument("--timeout", type=float, metavar="SECONDS", help="time limit for reading (default 90)")


def _compat_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--driver", metavar="VERSION", help="NVIDIA driver version, e.g. 535.104.05")
    p.add_argument("--gpu", metavar="NAME", help='GPU product name, e.g. "RTX 5090" or "A100"')
    p.add_argument("--cc", metavar="X.Y", help="GPU compute capability, e.g. 12.0")
    p.add_argument("--torch", metavar="VERSION", help="one PyTorch release (default: the latest; all with --gpu/--cc)")
    p.add_argument("--platform", choices=("linux", "windows"), help="driver table (default: this machine's)")
    p.add_argument("--json", action="store_true", help="print the tbdoctor.compat/1 JSON object only")


def _report_arguments(p: argparse.ArgumentParser) -> None:
    _add_target(p)
    p.add_argument("--json", action="store_true", help="a tbdoctor.bugreport/1 JSON object instead of Markdown")
    p.add_argument("--output", metavar="FILE", help="write the report to FILE instead of stdout")
    p.add_argument("--no-redact", action="store_true",
                   help="keep home, user and host names and GPU UUIDs (secrets are always removed)")
    p.add_argument("--timeout", type=float, metavar="SECONDS", help="time limit for each probe (default 90)")
    p.add_argument("--facts", metavar="FILE", help="build the report from a saved facts snapshot instead of probing")
    p.add_argument("--policy", metavar="FILE", help="policy file to include (default: as for check)")
    p.set_defaults(only=[], ignore=[], save_facts=None, quick=False, no_cache=False)


def _fleet_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("reports", nargs="+", metavar="REPORT",
                   help="`check --json` files, or directories searched for *.json")
    p.add_argument("--uniform", nargs="+", action="extend", metavar="KEY", default=[],
                   help="fail (exit 1) when KEY differs across machines: a column (driver, cuda, torch, "
                        "torch_cuda, tensorflow, tensorboardx, tensorboard, gpus, gpu_model, python) or a package name")
    p.add_argument("--policy", metavar="FILE", help="judge every machine's facts against this policy")
    p.add_argument("--json", action="store_true", help="print a tbdoctor.fleet/1 JSON object")
    p.add_argument("--output", metavar="FILE", help="write the table (or JSON) to FILE instead of stdout")


def _schema_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", nargs="?", metavar="NAME",
                   help="report, verify, facts, bugreport, compat, logdir or fleet (none: list them)")


# name -> (help, argument definer); the module tbdoctor.commands.<name> does the work.
COMMANDS = {
    "check": ("diagnose an environment: Python, pip, GPU, CUDA, frameworks, TensorBoard", _check_arguments),
    "fix": ("repair an environment from check's findings: plan, dry run, snapshot, apply, roll back", _fix_arguments),
    "setup": ("build a known-good environment from a profile (cpu, cuda, tensorflow, full)", _setup_arguments),
    "compat": ("which CUDA versions and PyTorch builds a driver or GPU can use (bundled data, no network)",
               _compat_arguments),
    "report": ("a redacted Markdown bug report: versions, hardware, findings", _report_arguments),
    "fleet": ("merge `check --json` reports of many machines: versions table, drift, policy", _fleet_arguments),
    "logdir": ("read your event files with TensorBoard's own loader: runs, tags, steps, and why nothing shows",
               _logdir_arguments),
    "verify": ("train the reference model in an environment and prove TensorBoard shows it", _verify_arguments),
    "schema": ("print the JSON Schema of a JSON output (report, verify, facts, ...), or list them",
               _schema_arguments),
}


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="tbdoctor", description="The deep-learning environment doctor.")
    parser.add_argument("--version", action="version",
                        version=f"tbdoctor {__version__} (knowledge base of {tables.load('knowledge')['date']})")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, (help_text, define) in COMMANDS.items():
        define(sub.add_parser(name, help=help_text, description=help_text))
    return parser


def _terminated(_signum, _frame):
    raise KeyboardInterrupt  # `kill` cleans up (children, temporary folders, fix rollback) as Ctrl-C does


def main(argv: list[str] | None = None) -> int:
    for stream in (sys.stdout, sys.stderr):  # an ASCII-only terminal gets '?' for ✓, never a crash
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="replace")
    redact.install(sys.argv[1:] if argv is None else argv)  # from here on, nothing printed carries a secret
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminated)
    try:
        return _run(argv)
    finally:
        redact.flush()


def _run(argv: list[str] | None) -> int:
    try:
        args = build_parser().parse_args(argv)
        if not args.command:
            raise UsageError("no command given; try `tbdoctor check` (see `tbdoctor --help`)")
        command = importlib.import_module(f"tbdoctor.commands.{args.command.replace('-', '_')}")
        return command.run(args)
    except UsageError as exc:
        print(f"tbdoctor: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("tbdoctor: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        sys.stderr.close()  # the reader went away (e.g. `| head`): not an error worth a message
        return 0
    except Exception as exc:  # a bug in tbdoctor: say so, briefly
        print(f"tbdoctor: internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
        if os.environ.get("TBDOCTOR_DEBUG"):
            traceback.print_exc()
        else:
            print(f"tbdoctor: this is a bug; please report it at {ISSUES_URL} "
                  "(set TBDOCTOR_DEBUG=1 to see the traceback)", file=sys.stderr)
        return EXIT_INTERNAL
