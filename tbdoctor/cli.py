"""Command-line wiring: parse arguments, call one command, map the result to an exit code.

All argparse definitions live here; each command's work is in
``tbdoctor/commands/<name>.py``, imported only when that command runs so that
``--help`` and ``--version`` stay fast. Exit codes: errors.py.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback

from tbdoctor import __version__
from tbdoctor.errors import EXIT_INTERNAL, EXIT_USAGE, ISSUES_URL, UsageError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2, instead of usage + message
        raise UsageError(f"{message} (see `{self.prog} --help`)")


def _add_target(p: argparse.ArgumentParser) -> None:
    p.add_argument("--python", metavar="PATH",
                   help="interpreter or environment directory to diagnose (default: $VIRTUAL_ENV, "
                        "$CONDA_PREFIX, python3 on PATH, then tbdoctor's own)")


def _check_arguments(p: argparse.ArgumentParser) -> None:
    _add_target(p)
    p.add_argument("--json", action="store_true", help="print the tbdoctor.report/1 JSON object only")
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


def _compat_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--driver", metavar="VERSION", help="NVIDIA driver version, e.g. 535.104.05")
    p.add_argument("--gpu", metavar="NAME", help='GPU product name, e.g. "RTX 5090" or "A100"')
    p.add_argument("--cc", metavar="X.Y", help="GPU compute capability, e.g. 12.0")
    p.add_argument("--torch", metavar="VERSION", help="one PyTorch release (default: the latest; all with --gpu/--cc)")
    p.add_argument("--platform", choices=("linux", "windows"), help="driver table (default: this machine's)")
    p.add_argument("--json", action="store_true", help="print the tbdoctor.compat/1 JSON object only")


# name -> (help, argument definer); the module tbdoctor.commands.<name> does the work.
COMMANDS = {
    "check": ("diagnose an environment: Python, pip, GPU, CUDA, frameworks, TensorBoard", _check_arguments),
    "compat": ("which CUDA versions and PyTorch builds a driver or GPU can use (bundled data, no network)",
               _compat_arguments),
}


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="tbdoctor", description="The deep-learning environment doctor.")
    parser.add_argument("--version", action="version", version=f"tbdoctor {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, (help_text, define) in COMMANDS.items():
        define(sub.add_parser(name, help=help_text, description=help_text))
    return parser


def main(argv: list[str] | None = None) -> int:
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
