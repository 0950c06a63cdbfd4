"""How tbdoctor runs pip against a target, and pip's answers parsed.

Which pip: the target's own (``python -m pip``); in a uv environment without
pip, ``uv pip --python``; for a dry run when the target has no usable pip,
tbdoctor's own pip pointed at the target (``pip --python``, pip >= 22.3).
Every call honours the user's pip configuration (config files and PIP_*
variables) plus the source options given on tbdoctor's command line, except
restores from a snapshot's own wheels, which are isolated and offline.
Processes start only through ``procs``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from packaging.version import Version

from tbdoctor import procs
from tbdoctor.compat import parse_version

INSTALL_TIMEOUT = 3600.0  # a CUDA torch download is a few GB
QUERY_TIMEOUT = 600.0
_QUIET = {"PIP_NO_INPUT": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PYTHONIOENCODING": "utf-8"}
_DRY_RUN_PIP = Version("22.2")  # --dry-run --report
_PYTHON_OPTION_PIP = Version("22.3")  # pip --python
# What pip says when it cannot reach an index (as opposed to: nothing there fits).
_UNREACHABLE = ("NewConnectionError", "ConnectTimeout", "ReadTimeout", "Max retries exceeded", "ProxyError",
                "SSLError", "Network is unreachable", "Temporary failure in name resolution",
                "Name or service not known", "Connection refused")


class PipError(Exception):
    """pip could not do what was asked; ``tail`` is the end of what it said."""

    def __init__(self, message: str, tail: str = "", unreachable: bool = False):
        super().__init__(message)
        self.tail = tail
        self.unreachable = unreachable  # an index could not be reached, or pip ran out of time


def source_options(index_url=None, extra_index_urls=(), find_links=(), constraints=(), no_index=False) -> tuple[str, ...]:
    """pip options from tbdoctor's command line (an offline wheelhouse, a mirror)."""
    argv: list[str] = []
    if index_url:
        argv += ["--index-url", index_url]
    for url in extra_index_urls or ():
        argv += ["--extra-index-url", url]
    for link in find_links or ():
        argv += ["--find-links", link]
    for path in constraints or ():
        argv += ["--constraint", str(Path(path).absolute())]
    if no_index:
        argv.append("--no-index")
    return tuple(argv)


_CONFIG_OPTIONS = {"index-url": "--index-url", "extra-index-url": "--extra-index-url", "find-links": "--find-links",
                   "constraint": "--constraint", "no-index": "--no-index"}


def config_sources(python_facts: dict | None) -> tuple[str, ...]:
    """pip's own configuration of package sources (config files and PIP_* variables, as the
    python probe read them) as command-line options, for a tool that does not read it (uv)."""
    py = python_facts or {}
    values: dict[str, list[str]] = {}
    config = dict((py.get("pip") or {}).get("config") or {})
    config.update({"env." + k[4:].lower().replace("_", "-"): v for k, v in (py.get("environ") or {}).items()
                   if k.startswith("PIP_")})
    for key, value in sorted(config.items()):
        option = _CONFIG_OPTIONS.get(key.rsplit(".", 1)[-1])
        if option:
            values.setdefault(option, [])
            values[option] += [v for v in str(value).split() if v not in values[option]]
    argv: list[str] = []
    for option, items in values.items():
        if option == "--no-index":
            argv += [option] if any(v.lower() in ("1", "true", "yes", "on") for v in items) else []
        elif option == "--index-url":
            argv += [option, items[-1]]
        else:
            for item in items:
                argv += [option, item]
    return tuple(argv)


def errors_of(result: procs.ProcResult) -> str:
    """pip's ERROR lines (or the end of its stderr): what a user needs to read."""
    lines = [ln for ln in result.stderr.splitlines() if ln.startswith("ERROR:")]
    return "\n".join(lines[-6:]) or result.stderr_tail() or result.failure()


@dataclass(frozen=True)
class Pip:
    target: str  # the target interpreter
    use_uv: bool  # a uv environment without pip: `uv pip --python`
    target_pip: Version | None  # the target's pip version, None when it has none
    sources: tuple[str, ...] = ()  # from the command line
    break_system: bool = False  # the user's explicit PEP 668 override

    @classmethod
    def for_facts(cls, facts: dict, sources: tuple[str, ...] = (), break_system: bool = False) -> "Pip":
        py = facts.get("python") or {}
        pip = py.get("pip") or {}
        version = parse_version(pip.get("version")) if pip.get("installed") else None
        use_uv = version is None and py.get("env_kind") == "uv" and shutil.which("uv") is not None
        return cls(facts["target"]["python"], use_uv, version, tuple(sources), break_system)

    @property
    def description(self) -> str:
        return "uv pip" if self.use_uv else f"pip {self.target_pip}" if self.target_pip else "pip (after ensurepip)"

    def _base(self, verb: str) -> list[str]:
        if self.use_uv:
            return ["uv", "pip", verb, "--python", self.target]
        return [self.target, "-m", "pip", verb]

    def _override(self) -> list[str]:
        return ["--break-system-packages"] if self.break_system else []

    def install_argv(self, packages, options=()) -> list[str]:
        return self._base("install") + self._override() + list(self.sources) + list(options) + list(packages)

    def uninstall_argv(self, names) -> list[str]:
        confirm = [] if self.use_uv else ["-y"]
        return self._base("uninstall") + confirm + self._override() + list(names)

    def bootstrap_argv(self) -> list[str]:
        return [self.target, "-m", "ensurepip", "--upgrade"]

    def restore_argv(self, wheelhouse: Path, pins) -> list[str]:
        """Reinstall exact versions from a snapshot's wheels: offline, no dependency changes."""
        isolated = [] if self.use_uv else ["--isolated"]
        return (self._base("install") + isolated + self._override()
                + ["--no-index", "--find-links", str(wheelhouse), "--no-deps", "--reinstall" if self.use_uv
                   else "--ignore-installed"] + list(pins))

    def freeze_argv(self) -> list[str]:
        return self._base("freeze")

    def run(self, argv: list[str], timeout: float = INSTALL_TIMEOUT) -> procs.ProcResult:
        return procs.run(argv, timeout=timeout, env=dict(os.environ, **_QUIET), interrupt_grace=20.0)

    def _query_base(self) -> list[str]:
        """A pip that can answer --dry-run --report for the target."""
        if self.target_pip is not None and self.target_pip >= _DRY_RUN_PIP:
            return [self.target, "-m", "pip"]
        if importlib.util.find_spec("pip") is not None:
            from pip import __version__ as own
            if Version(own) >= _PYTHON_OPTION_PIP:
                return [sys.executable, "-m", "pip", "--python", self.target]
        found = f"pip {self.target_pip}" if self.target_pip else "no pip"
        raise PipError(f"cannot ask pip what it would do: the target has {found} (a dry run needs pip >= 22.2) "
                       "and tbdoctor's own environment has no pip >= 22.3 to run for it")

    def cannot_dry_run(self) -> str | None:
        """Why no pip can answer a dry run for the target (None: one can)."""
        try:
            self._query_base()
        except PipError as exc:
            return str(exc)
        return None

    def dry_run(self, packages, options=(), timeout: float = QUERY_TIMEOUT) -> list[dict]:
        """What ``pip install`` would install: [{name, version, requires}]; PipError if it cannot resolve."""
        with tempfile.TemporaryDirectory(prefix="tbdoctor-dry-run-") as tmp:
            report = Path(tmp) / "report.json"
            argv = (self._query_base() + ["install", "--dry-run", "--quiet", "--report", str(report)]
                    + self._override() + list(self.sources) + list(options) + list(packages))
            result = procs.run(argv, timeout=timeout, env=dict(os.environ, **_QUIET))
            if not result.ok:
                unreachable = result.timed_out or any(s in result.stderr for s in _UNREACHABLE)
                raise PipError(f"pip cannot install {' '.join(packages)} ({result.failure()})", errors_of(result),
                               unreachable)
            try:
                data = json.loads(report.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise PipError(f"pip wrote no readable dry-run report ({exc})") from None
        return [{"name": item["metadata"]["name"], "version": item["metadata"]["version"],
                 "requires": item["metadata"].get("requires_dist") or []} for item in data.get("install", ())]
