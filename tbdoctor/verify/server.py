"""The server phase: the target's real TensorBoard on 127.0.0.1 must list the
runs and serve every scalar point the job wrote, over its HTTP API.

TensorBoard runs in its own process group (procs.start) and is stopped with
its helpers (the data server) on success, failure, timeout and Ctrl-C; with
``--serve`` the caller keeps it and stops it later.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

from tbdoctor import procs
from tbdoctor.findings import quote_command
from tbdoctor.target import Target
from tbdoctor.verify.readback import same
from tbdoctor.verify.result import FAIL, PASS, Phase

HOST = "127.0.0.1"
_POLL = 0.25


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def argv(target: Target, run_dir: str, port: int) -> list[str]:
    return [target.python, "-m", "tensorboard.main", "--logdir", run_dir, "--host", HOST,
            "--port", str(port), "--reload_interval", "1"]


def _get(url: str, timeout: float = 2.0):
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (127.0.0.1 only)
        return json.loads(response.read().decode("utf-8"))


class Server:
    """A running TensorBoard; ``stop()`` is idempotent."""

    def __init__(self, target: Target, run_dir: str, port: int | None):
        self.port = port or free_port()
        self.url = f"http://{HOST}:{self.port}/"
        self.argv = argv(target, run_dir, self.port)
        self._logs = tempfile.mkdtemp(prefix="tbdoctor-tensorboard-")
        env = dict(os.environ, PYTHONIOENCODING="utf-8", TF_CPP_MIN_LOG_LEVEL="3")
        self.bg = procs.start(self.argv, os.path.join(self._logs, "tensorboard.log"), env=env, cwd=self._logs)

    @property
    def command(self) -> str:
        return quote_command(self.argv)

    def stop(self) -> None:
        procs.stop(self.bg)
        shutil.rmtree(self._logs, ignore_errors=True)  # its log, and whatever TensorBoard left in its cwd


def _missing_points(url: str, expected: dict) -> tuple[list[str], str]:
    """(runs listed, '' if TensorBoard serves every expected point, else what is missing)."""
    runs = _get(url + "data/runs")
    for run, tags in expected.items():
        if run not in runs:
            return runs, f"run {run} not listed"
        for tag, points in tags.items():
            query = urllib.parse.urlencode({"run": run, "tag": tag})
            try:
                served = {step: value for _wall, step, value in _get(f"{url}data/plugin/scalars/scalars?{query}")}
            except urllib.error.HTTPError:
                return runs, f"run {run}: scalar {tag} not served"
            for step, value in points:
                if step not in served:
                    return runs, f"run {run}: scalar {tag} lacks step {step}"
                if not same(value, served[step]):
                    return runs, f"run {run}: scalar {tag} step {step} is {served[step]!r}, {value!r} was written"
    return runs, ""


def _expected(written: dict) -> dict:
    return {run: rec.get("scalars", {}) for run, rec in written.items() if rec.get("scalars")}


def check(server: Server, written: dict, wait: float) -> tuple[Phase, list[str]]:
    """Wait (at most ``wait`` s) until TensorBoard serves what was written."""
    start = time.monotonic()
    expected = _expected(written)
    answered, missing, runs = False, "nothing read yet", []
    while True:
        code = server.bg.exit_code()
        if server.bg.error or code is not None:
            return _exited(server, code, time.monotonic() - start), runs
        try:
            runs, missing = _missing_points(server.url, expected)
            answered = True
            if not missing:
                points = sum(len(p) for tags in expected.values() for p in tags.values())
                return Phase("server", PASS, time.monotonic() - start,
                             f"{server.url} lists {len(runs)} runs and serves all {points} scalar points"), runs
        except (OSError, ValueError):  # not listening yet, or a half-started server
            pass
        if time.monotonic() - start >= wait:
            break
        time.sleep(min(_POLL, max(0.0, wait - (time.monotonic() - start))))
    seconds = time.monotonic() - start
    if not answered:
        return Phase("server", FAIL, seconds, f"TensorBoard did not answer on {server.url} within {wait:g} s",
                     f"raise --server-timeout, or run `{server.command}` by hand to see why"), runs
    return Phase("server", FAIL, seconds, f"TensorBoard answered but after {wait:g} s still shows incomplete "
                 f"data: {missing}", f"raise --server-timeout, or open {server.url} to look"), runs


def _exited(server: Server, code: int | None, seconds: float) -> Phase:
    tail = server.bg.log_tail(20)
    if server.bg.error:
        return Phase("server", FAIL, seconds, f"could not start TensorBoard: {server.bg.error}",
                     f"run `{server.command}` by hand to see why")
    if "could not bind to port" in tail or "already in use" in tail:
        return Phase("server", FAIL, seconds, f"port {server.port} on {HOST} is already in use",
                     "pass another --port, or omit --port to use a free one")
    if "No module named tensorboard" in tail or "No module named 'tensorboard'" in tail:
        return Phase("server", FAIL, seconds, "tensorboard is not installed in the target",
                     quote_command([server.argv[0], "-m", "pip", "install", "tensorboard"]))
    last = [line for line in tail.splitlines() if line.strip()][-1:] or ["no output"]
    return Phase("server", FAIL, seconds, f"TensorBoard exited with status {code}: {last[0].strip()[:300]}",
                 f"run `{server.command}` by hand to see the whole error")
