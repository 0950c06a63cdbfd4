"""The only place tbdoctor starts processes.

``run(argv, timeout)`` never raises for the child's sake: a missing program, a
non-zero exit, a signal or a timeout all come back as values of ``ProcResult``.
Each child gets its own process group, so a timeout kills the whole tree.
``start``/``stop`` do the same for a long-running child (a server) that the
caller must stop on every path.
Imports nothing from tbdoctor.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import Callable

_WINDOWS = sys.platform == "win32"
_LIVE: set[subprocess.Popen] = set()  # children still running, for kill_all()
_LIVE_LOCK = threading.Lock()


@dataclass(frozen=True)
class ProcResult:
    argv: tuple[str, ...]
    returncode: int | None  # None when it never ran or was killed on timeout
    stdout: str = ""
    stderr: str = ""
    seconds: float = 0.0
    timed_out: bool = False
    stalled: float = 0.0  # > 0: stopped after that many seconds without progress (a hang)
    not_found: bool = False
    error: str = ""  # why it could not be started

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    @property
    def signal_name(self) -> str | None:
        """``SIGSEGV`` for a child killed by signal 11, else None."""
        if self.returncode is None or self.returncode >= 0:
            return None
        try:
            return signal.Signals(-self.returncode).name
        except ValueError:
            return f"signal {-self.returncode}"

    def failure(self) -> str:
        """A one-line description of what went wrong, or '' when it succeeded."""
        if self.not_found:
            return f"{self.argv[0]} not found"
        if self.error:
            return f"could not start {self.argv[0]}: {self.error}"
        if self.stalled:
            return f"hung (no progress for {self.stalled:.0f} s, stopped after {self.seconds:.0f} s)"
        if self.timed_out:
            return f"timed out after {self.seconds:.0f} s"
        if self.signal_name:
            return f"crashed ({self.signal_name}, signal {-self.returncode})"
        if self.returncode:
            return f"exited with status {self.returncode}"
        return ""

    def stderr_tail(self, lines: int = 8) -> str:
        return "\n".join(self.stderr.strip().splitlines()[-lines:])


def run(
    argv: list[str],
    timeout: float,
    env: dict[str, str] | None = None,
    cwd: str | None = None,
    stdin_text: str | None = None,
    interrupt_grace: float = 0.0,
    stall: float = 0.0,
    on_line: Callable[[str], None] | None = None,
) -> ProcResult:
    """Run ``argv`` (never through a shell) and wait at most ``timeout`` seconds.

    On Ctrl-C in tbdoctor the child is killed; with ``interrupt_grace`` it first
    gets SIGINT and that many seconds to clean up (pip rolls back its own
    half-done uninstall on KeyboardInterrupt).
    With ``stall``, a child whose process tree makes no progress (see
    ``progress``) for that many seconds is hung: it gets SIGUSR1 (a payload
    dumps its Python stack on it), a moment to write, and is killed; so is one
    that reaches ``timeout``. Where /proc is missing (macOS, Windows) only
    ``timeout`` applies. ``on_line`` is called with each
    line of stdout as it arrives (live progress), from a reader thread; such a
    run is bounded by ``timeout`` only.
    """
    start = time.monotonic()
    try:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.PIPE if stdin_text is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=cwd,
            encoding="utf-8",
            errors="replace",
            **_own_group(),
        )
    except FileNotFoundError:
        return ProcResult(tuple(argv), None, not_found=True)
    except OSError as exc:  # permission denied, exec format error, ...
        return ProcResult(tuple(argv), None, error=exc.strerror or str(exc))
    with _LIVE_LOCK:
        _LIVE.add(proc)
    talk = proc.communicate if on_line is None else _streamer(proc, on_line)
    try:
        if on_line is None:
            out, err, stalled = _communicate(proc, stdin_text, start + timeout, stall if _PROC_FS else 0.0)
        else:
            (out, err), stalled = talk(stdin_text, timeout=timeout), 0.0
        if stalled:
            _dump_and_kill(proc)
            try:
                out, err = proc.communicate(timeout=5)
            except (subprocess.TimeoutExpired, ValueError):
                out, err = "", ""
            return ProcResult(tuple(argv), None, out or "", err or "", time.monotonic() - start, stalled=stalled)
    except subprocess.TimeoutExpired:
        if stall and not _WINDOWS:
            _dump_and_kill(proc)
        else:
            _kill_tree(proc)
        try:
            out, err = talk(None, timeout=5)
        except (subprocess.TimeoutExpired, ValueError):
            out, err = "", ""
        return ProcResult(tuple(argv), None, out or "", err or "", time.monotonic() - start, timed_out=True)
    except BaseException:
        if interrupt_grace and not _WINDOWS:
            _interrupt(proc, interrupt_grace)
        _kill_tree(proc)
        raise
    finally:
        with _LIVE_LOCK:
            _LIVE.discard(proc)
    return ProcResult(tuple(argv), proc.returncode, out, err, time.monotonic() - start)


# Linux with the children lists (CONFIG_PROC_CHILDREN): without them, only the timeout applies.
_PROC_FS = os.path.exists(f"/proc/self/task/{os.getpid()}/children")
_POLL = 1.0  # seconds between looks at a watched child


def _communicate(proc: subprocess.Popen, stdin_text: str | None, deadline: float,
                 stall: float) -> tuple[str, str, float]:
    """(stdout, stderr, 0.0) when ``proc`` ends; ("", "", window) when its tree made
    no progress for ``stall`` seconds (0: not watched). TimeoutExpired at ``deadline``.
    Output is not lost between looks: communicate() continues where it stopped."""
    last, since, first = None, time.monotonic(), True
    while True:
        remaining = deadline - time.monotonic()
        try:
            out, err = proc.communicate(stdin_text if first else None,
                                        timeout=max(0.01, min(_POLL, remaining) if stall else remaining))
            return out, err, 0.0
        except subprocess.TimeoutExpired:
            first = False
            if time.monotonic() >= deadline:
                raise
        now, seen = time.monotonic(), progress(proc.pid)
        if seen is None or seen != last:
            last, since = seen, now
        elif now - since >= stall:
            return "", "", stall


def progress(pid: int) -> tuple | None:
    """What grows while ``pid`` and its descendants work, summed: CPU time, major
    page faults (mapping a library from a slow disk), bytes read and written (any
    file, pipe or socket). None (counts as progress) while one of them waits for
    the disk (state D). Linux /proc only."""
    cpu = faults = io = 0
    for each in _tree(pid):
        try:
            with open(f"/proc/{each}/stat", "rb") as fh:
                fields = fh.read().rsplit(b")", 1)[1].split()
            if fields[0] == b"D":
                return None
            cpu += int(fields[11]) + int(fields[12])  # utime, stime
            faults += int(fields[9])  # majflt
            with open(f"/proc/{each}/io", "rb") as fh:
                io += sum(int(line.split()[1]) for line in fh if line.split()[0] in
                          (b"rchar:", b"wchar:", b"read_bytes:", b"write_bytes:"))
        except (OSError, IndexError, ValueError):
            continue  # it ended meanwhile, or is not ours to read
    return cpu, faults, io


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants, from /proc/<pid>/task/<tid>/children."""
    found = [pid]
    for each in found:
        try:
            tids = os.listdir(f"/proc/{each}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                with open(f"/proc/{each}/task/{tid}/children", "rb") as fh:
                    found += [int(c) for c in fh.read().split()]
            except (OSError, ValueError):
                continue
    return found


def _dump_and_kill(proc: subprocess.Popen) -> None:
    """SIGUSR1 to the hung child (its Python stack to stderr), then kill its group."""
    try:
        os.kill(proc.pid, signal.SIGUSR1)
        proc.wait(1.0)
    except (ProcessLookupError, PermissionError, subprocess.TimeoutExpired):
        pass
    _kill_tree(proc)


def _streamer(proc: subprocess.Popen, on_line: Callable[[str], None]):
    """A ``communicate(input, timeout)`` that also hands each stdout line to ``on_line``."""
    chunks: dict[str, list[str]] = {"out": [], "err": []}

    def pump(stream, key: str, callback) -> None:
        for line in stream:
            chunks[key].append(line)
            if callback is not None:
                try:
                    callback(line)
                except Exception:  # noqa: BLE001 (a display problem must not lose the output)
                    pass
        stream.close()

    readers = [threading.Thread(target=pump, args=(proc.stdout, "out", on_line), daemon=True),
               threading.Thread(target=pump, args=(proc.stderr, "err", None), daemon=True)]
    for reader in readers:
        reader.start()

    def feed(text: str) -> None:
        try:
            proc.stdin.write(text)
            proc.stdin.close()
        except (OSError, ValueError):  # the child exited without reading it
            pass

    def talk(stdin_text: str | None, timeout: float) -> tuple[str, str]:
        if stdin_text is not None and proc.stdin is not None:  # a thread: a full pipe must not block the timeout
            threading.Thread(target=feed, args=(stdin_text,), daemon=True).start()
        proc.wait(timeout=timeout)
        for reader in readers:
            reader.join(timeout)
        return "".join(chunks["out"]), "".join(chunks["err"])

    return talk


@dataclass
class Background:
    """A long-running child (a server): its own process group, output in a file."""

    argv: tuple[str, ...]
    popen: subprocess.Popen | None
    log_path: str
    error: str = ""  # why it could not be started

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen else None

    def exit_code(self) -> int | None:
        """None while it runs (or never started)."""
        return self.popen.poll() if self.popen else None

    def log_tail(self, lines: int = 8) -> str:
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as fh:
                return "\n".join(fh.read().strip().splitlines()[-lines:])
        except OSError:
            return ""


def start(argv: list[str], log_path: str, env: dict[str, str] | None = None,
          cwd: str | None = None) -> Background:
    """Start ``argv`` in the background in its own process group; stdout and
    stderr go to ``log_path``. Never raises; pair every call with ``stop``."""
    try:
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    env=env, cwd=cwd, **_own_group())
    except OSError as exc:
        return Background(tuple(argv), None, log_path, error=exc.strerror or str(exc))
    with _LIVE_LOCK:
        _LIVE.add(proc)
    return Background(tuple(argv), proc, log_path)


def stop(bg: Background, grace: float = 5.0) -> None:
    """Stop a background child and everything it started: SIGTERM to its group,
    then SIGKILL after ``grace`` seconds. Safe to call twice."""
    proc = bg.popen
    if proc is None:
        return
    if not _WINDOWS:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
    # The group may outlive its leader (a helper it spawned): kill whatever is left.
    _kill_tree(proc)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        pass
    with _LIVE_LOCK:
        _LIVE.discard(proc)


def _own_group() -> dict:
    """Popen arguments that put the child in a process group of its own."""
    if _WINDOWS:
        return {"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP}
    return {"start_new_session": True}


def kill_all() -> None:
    """Kill every child still running (on Ctrl-C: they are in their own process groups)."""
    with _LIVE_LOCK:
        live = list(_LIVE)
    for proc in live:
        _kill_tree(proc)


def _interrupt(proc: subprocess.Popen, grace: float) -> None:
    """SIGINT to the child's process group, then wait up to ``grace`` seconds for it."""
    try:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(grace)
    except (ProcessLookupError, PermissionError, subprocess.TimeoutExpired, KeyboardInterrupt):
        pass


def _kill_tree(proc: subprocess.Popen) -> None:
    """Kill ``proc`` and everything it started (its process group)."""
    if _WINDOWS:
        subprocess.run(
            ["taskkill", "/F", "/T", "/PID", str(proc.pid)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=10, check=False,
        )
        proc.kill()
        return
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()
