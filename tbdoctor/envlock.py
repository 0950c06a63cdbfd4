"""One ``fix`` or ``--rollback`` at a time per environment: a lock file in the state folder.

POSIX only: ``fcntl.flock`` on ``<state>/locks/<hash of the interpreter>.lock``.
The kernel drops the lock when its holder dies, so a killed fix never blocks
the next one (its stale pid in the file is simply overwritten). The holder
writes its pid, start time and command line into the file for whoever waits.
Where ``fcntl`` does not exist (Windows), fixes are not serialised.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import os
import sys
import time

from tbdoctor.errors import UsageError
from tbdoctor.facts import redact_text
from tbdoctor.files import private_dir
from tbdoctor.snapshot import STATE_ENV, state_dir

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

WAIT_ENV = "TBDOCTOR_LOCK_WAIT"
WAIT = 10.0  # seconds a second fix waits before it gives up


class Busy(Exception):
    """Another process holds the environment's lock; the message names it."""


def _holder(fh) -> str:
    fh.seek(0)
    try:
        info = json.loads(fh.read() or "{}")
    except ValueError:
        info = {}
    if not info:
        return "another process (it has not said which yet)"
    return f"pid {info.get('pid')}, started {info.get('started')}: {info.get('command')}"


@contextlib.contextmanager
def held(python: str):
    """Hold ``python``'s environment lock for the ``with`` block; Busy if another process keeps it."""
    if fcntl is None:
        yield
        return
    key = hashlib.sha256(os.path.realpath(python).encode()).hexdigest()[:16]
    try:
        path = private_dir(state_dir() / "locks") / f"{key}.lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise UsageError(f"cannot create a lock file in {state_dir()} ({exc.strerror or exc}); "
                         f"set {STATE_ENV} to a writable folder") from None
    try:
        wait = float(os.environ.get(WAIT_ENV) or WAIT)
    except ValueError:
        raise UsageError(f"{WAIT_ENV} must be a number of seconds") from None
    with open(fd, "r+", encoding="utf-8") as fh:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise Busy(f"another tbdoctor is changing {python} ({_holder(fh)}); "
                               f"waited {wait:.0f} s. Try again when it has finished") from None
                time.sleep(0.2)
        fh.seek(0)
        fh.truncate()
        json.dump({"pid": os.getpid(), "python": python,
                   "started": datetime.datetime.now().isoformat(timespec="seconds"),
                   "command": redact_text(" ".join(["tbdoctor", *sys.argv[1:]]))}, fh)
        fh.flush()
        try:
            yield
        finally:
            fh.seek(0)
            fh.truncate()
            fh.flush()
            fcntl.flock(fh, fcntl.LOCK_UN)
