"""Which Python interpreter tbdoctor diagnoses, and why.

Order (DESIGN.md): ``--python``, ``$VIRTUAL_ENV``, ``$CONDA_PREFIX``, the
``python3`` first on PATH, then tbdoctor's own interpreter.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from tbdoctor import procs
from tbdoctor.errors import UsageError

_PROBE = "import json, sys; print(json.dumps([list(sys.version_info[:3]), sys.executable]))"


@dataclass(frozen=True)
class Target:
    python: str  # absolute path of the interpreter
    chosen_by: str  # --python | VIRTUAL_ENV | CONDA_PREFIX | PATH | self
    version: tuple[int, int, int]

    def to_dict(self) -> dict:
        return {"python": self.python, "chosen_by": self.chosen_by,
                "version": ".".join(map(str, self.version))}

    @classmethod
    def from_dict(cls, data: dict) -> "Target":
        return cls(data["python"], data["chosen_by"], tuple(int(part) for part in data["version"].split(".")))


def interpreter_in(prefix: Path) -> Path | None:
    """The interpreter of an environment directory (venv, conda), on any platform."""
    for rel in ("bin/python", "bin/python3", "Scripts/python.exe", "python.exe", "python"):
        candidate = prefix / rel
        if candidate.is_file():
            return candidate
    return None


def choose(python: str | None) -> Target:
    """Resolve the target interpreter; a bad ``--python`` raises UsageError."""
    if python:
        path = Path(python).expanduser()
        if path.is_dir():
            found = interpreter_in(path)
            if found is None:
                raise UsageError(f"--python {python}: directory has no bin/python or Scripts\\python.exe")
            path = found
        elif not path.exists():
            on_path = shutil.which(python)  # a bare name such as python3.11
            if on_path is None:
                raise UsageError(f"--python {python}: no such file or directory")
            path = Path(on_path)
        return _validate(path, "--python")
    for var in ("VIRTUAL_ENV", "CONDA_PREFIX"):
        prefix = os.environ.get(var)
        found = interpreter_in(Path(prefix)) if prefix else None
        if found is not None:
            try:
                return _validate(found, var)
            except UsageError:
                continue  # a stale variable: fall through to the next candidate
    on_path = shutil.which("python3") or shutil.which("python")
    if on_path:
        try:
            return _validate(Path(on_path), "PATH")
        except UsageError:
            pass
    return _validate(Path(sys.executable), "self")


def _validate(path: Path, chosen_by: str) -> Target:
    """Run the interpreter once to prove it works and learn its version."""
    flag = f"--python {path}" if chosen_by == "--python" else f"{path} (from {chosen_by})"
    result = procs.run([str(path), "-S", "-c", _PROBE], timeout=30)
    if not result.ok:
        why = result.failure() or "failed"
        raise UsageError(f"{flag}: not a working Python interpreter ({why})")
    try:
        version, _executable = json.loads(result.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError, TypeError):
        raise UsageError(f"{flag}: not a Python interpreter (unexpected output)") from None
    if tuple(version[:2]) < (3, 8):
        raise UsageError(f"{flag}: Python {'.'.join(map(str, version))} is too old; tbdoctor diagnoses Python 3.8 and newer")
    # Keep the path the user gave (a venv's bin/python is often a symlink to the
    # base interpreter, and resolving it would leave the venv).
    return Target(str(path.absolute()), chosen_by, tuple(version))
