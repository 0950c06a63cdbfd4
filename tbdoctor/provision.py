"""What ``setup`` does to the disk: the target folder, the venv, the lock file.

``--force`` removes only what a venv consists of (and tbdoctor's lock file),
never any other file in the folder. Processes start only through ``procs``.
"""

from __future__ import annotations

import datetime
import os
import shutil
from pathlib import Path

from tbdoctor import files
from tbdoctor.errors import UsageError
from tbdoctor.facts import redact_text

LOCK_NAME = "tbdoctor-lock.txt"
# The entries `python -m venv` / `uv venv` create (POSIX and Windows layouts).
VENV_PARTS = ("pyvenv.cfg", "bin", "Scripts", "lib", "lib64", "Lib", "include", "Include", LOCK_NAME)


def venv_python(path: Path) -> Path:
    return path / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def activation(path: Path) -> str:
    if os.name == "nt":
        return f"{path}\\Scripts\\activate"
    return f"source {path}/bin/activate"


def removable(path: Path, force: bool) -> list[Path]:
    """What building in ``path`` must remove first; a UsageError when it may not."""
    if not path.exists():
        return []
    if not path.is_dir():
        raise UsageError(f"{path} exists and is not a directory")
    entries = list(path.iterdir())
    if not entries:
        return []
    if not force:
        raise UsageError(f"{path} is not empty; choose another directory, or pass --force to rebuild the venv "
                         "in it (--force removes only a venv's own parts; other files stay)")
    if not (path / "pyvenv.cfg").is_file():
        return []  # not a venv: build beside the files, remove nothing
    return sorted(p for p in entries if p.name in VENV_PARTS)


def remove(parts: list[Path]) -> None:
    for part in parts:
        if part.is_dir() and not part.is_symlink():
            shutil.rmtree(part)
        else:
            part.unlink()


def create_argv(python: str, path: Path, use_uv: bool) -> list[str]:
    if use_uv:
        return ["uv", "venv", "--python", python, "--allow-existing", str(path)]
    return [python, "-m", "venv", str(path)]


def write_lock(path: Path, profile: str, python_version: str, sources: tuple[str, ...], freeze: str) -> Path:
    """``tbdoctor-lock.txt``: the exact versions installed, as a pip requirements file."""
    lock = path / LOCK_NAME
    header = [f"# tbdoctor setup --profile {profile}, {datetime.date.today().isoformat()}, Python {python_version}",
              redact_text(f"# Rebuild: python -m pip install {' '.join(sources) + ' ' if sources else ''}-r {LOCK_NAME}")]
    files.write_text(lock, "\n".join(header) + "\n" + freeze)
    return lock
