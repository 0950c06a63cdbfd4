"""Every file and folder tbdoctor writes, in one place.

Text passes the redactor (redact.py) on its way to disk. tbdoctor's own
folders (the state dir with snapshots and history, the facts cache) are
private: created 0700, their metadata files 0600. Temporary folders live
under the system temp dir and are removed on every exit path (success,
failure, Ctrl-C, SIGTERM: cli.main turns it into KeyboardInterrupt) unless
the user asked to keep them.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from tbdoctor import redact


def private_dir(path) -> Path:
    """``path``, created with every missing parent as 0700 (existing folders are left as they are)."""
    path = Path(path)
    missing = []
    for folder in (path, *path.parents):
        if folder.exists():
            break
        missing.append(folder)
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=0o700)
        except FileExistsError:
            continue
        os.chmod(folder, 0o700)  # whatever the umask
    return path


def write_text(path, text: str, private: bool = False, append: bool = False, serialised: bool = False) -> None:
    """Write ``text`` redacted; ``private`` files are 0600. OSError is the caller's to report.
    ``serialised``: ``text`` was made from redacted values (see redact.known)."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC)
    fd = os.open(path, flags, 0o600 if private else 0o666)
    with open(fd, "w", encoding="utf-8") as fh:
        fh.write(redact.known(text) if serialised else redact.text(text))


def write_json(path, data, private: bool = False, **dumps) -> None:
    """``data`` as JSON, each value redacted before it is encoded."""
    write_text(path, json.dumps(redact.value(data), **dumps) + "\n", private=private, serialised=True)


@contextlib.contextmanager
def temp_dir(prefix: str, keep: bool = False):
    """A fresh folder under the system temp dir, removed on leaving unless ``keep``."""
    path = tempfile.mkdtemp(prefix=prefix)
    try:
        yield path
    finally:
        if not keep:
            shutil.rmtree(path, ignore_errors=True)
