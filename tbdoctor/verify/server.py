"""The server phase: the target's real TensorBoard on 127.0.0.1 must list the
runs and serve every scalar point the job wrote, over its HTTP API; then each
other summary kind is asked of its own plugin's endpoint and compared.

TensorBoard runs in its own process group (procs.start) and is stopped with
its helpers (the data server) on success, failure, timeout and Ctrl-C; with
``--serve`` the caller keeps it and stops it later.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import struct
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from html import escape as html_escape

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


def _get(url: str, timeout: float = 2.0, body: dict | None = None, raw: bool = False):
    """GET (or POST ``body`` as JSON) and decode the JSON answer (bytes with ``raw``)."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"} if data else {})
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (127.0.0.1 only)
        payload = response.read()
    return payload if raw else json.loads(payload.decode("utf-8"))


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
    if "from 'PIL'" in tail or "No module named 'PIL'" in tail:  # TensorBoard imports Pillow as it starts
        return Phase("server", FAIL, seconds, f"TensorBoard cannot start: Pillow cannot be imported "
                     f"({last[0].strip()[:300]})",
                     quote_command([server.argv[0], "-m", "pip", "install", "--force-reinstall", "pillow"]))
    return Phase("server", FAIL, seconds, f"TensorBoard exited with status {code}: {last[0].strip()[:300]}",
                 f"run `{server.command}` by hand to see the whole error")


def _plugin(url: str, path: str, **query) -> str:
    return f"{url}data/plugin/{path}?{urllib.parse.urlencode(query)}"


def _histograms(url: str, run: str, rec: dict) -> str:
    for tag, points in rec.get("histogram_counts", {}).items():
        served = {step: sum(b[2] for b in buckets)
                  for _wall, step, buckets in _get(_plugin(url, "histograms/histograms", run=run, tag=tag))}
        for step, samples in points:
            if step not in served:
                return f"run {run}: histogram {tag} lacks step {step}"
            if round(served[step]) != samples:
                return f"run {run}: histogram {tag} step {step} has {served[step]:g} samples, {samples} were written"
    return ""


def _images(url: str, run: str, rec: dict) -> str:
    for tag, (height, width, _channels) in rec.get("images", {}).items():
        listed = _get(_plugin(url, "images/images", run=run, tag=tag, sample=0))
        if not listed:
            return f"run {run}: image {tag} not listed"
        png = _get(f"{url}data/plugin/images/individualImage?{listed[-1]['query']}", raw=True)
        if png[:8] != b"\x89PNG\r\n\x1a\n" or png[12:16] != b"IHDR":
            return f"run {run}: image {tag} is not served as a PNG"
        size = struct.unpack(">II", png[16:24])
        if size != (width, height):
            return f"run {run}: image {tag} is served {size[0]}x{size[1]}, {width}x{height} was written"
    return ""


def _text(url: str, run: str, rec: dict) -> str:
    for tag, text in rec.get("text_values", {}).items():
        served = _get(_plugin(url, "text/text", run=run, tag=tag))
        cells = [c.strip() for line in text.splitlines() if line.startswith("|") and "---" not in line
                 for c in line.strip("|").split("|")] or [text.strip()]  # a table's cells, or the whole text
        html = served[-1]["text"] if served else ""
        absent = [c for c in cells if f">{html_escape(c)}<" not in html]
        if not served or absent:
            return f"run {run}: text {tag} is served without {absent[0] if absent else 'any entry'!r}"
    return ""


def _graph(url: str, run: str, rec: dict) -> str:
    op = rec.get("graph_op")
    if op and f'op: "{op}"' not in _get(_plugin(url, "graphs/graph", run=run, conversions="false"),
                                        raw=True).decode("utf-8", "replace"):
        return f"run {run}: the served graph has no {op} node"
    return ""


def _hparams(url: str, run: str, rec: dict) -> str:
    if not rec.get("hparams_metrics"):
        return ""
    body = {"experimentName": "", "startIndex": 0, "sliceSize": 100, "colParams": [],
            "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE", "STATUS_RUNNING"]}
    groups = _get(url + "data/plugin/hparams/session_groups", body=body).get("sessionGroups", [])
    sessions = {s["name"]: s for g in groups for s in g.get("sessions", [])}
    if run not in sessions:
        return f"the hparams plugin lists no session {run}"
    values = {m["name"]["tag"]: m.get("value") for m in sessions[run].get("metricValues", [])}
    for tag in rec["hparams_metrics"]:
        written = rec.get("scalars", {}).get(tag, [[0, None]])[-1][1]
        if tag not in values:
            return f"the hparams session {run} carries no {tag} metric"
        if written is not None and not same(written, values[tag]):
            return f"the hparams session {run} has {tag} = {values[tag]!r}, {written!r} was written"
    return ""


_KIND_CHECKS = {"histograms": _histograms, "images": _images, "text": _text, "graph": _graph, "hparams": _hparams}


def _ask_kinds(url: str, written: dict, kinds: list[str]) -> dict[str, str]:
    """Per kind, what its plugin serves differently from what was written ('' when the same)."""
    problems = {}
    for kind in kinds:
        problem = ""
        for run, rec in sorted(written.items()):
            try:
                problem = _KIND_CHECKS[kind](url, run, rec)
            except urllib.error.HTTPError as exc:
                plugin = "graphs" if kind == "graph" else kind
                problem = (f"the {plugin} plugin is not loaded (HTTP {exc.code})" if exc.code == 404
                           else f"the {plugin} plugin answered HTTP {exc.code} for run {run}")
            except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
                problem = f"asking for run {run}: {type(exc).__name__}: {exc}"
            if problem:
                break
        problems[kind] = problem
    return problems


def check_kinds(server: Server, written: dict, kinds: list[str], wait: float) -> dict[str, str]:
    """Ask each kind's plugin (retrying until ``wait`` s while the server loads); per kind, '' or the problem."""
    start = time.monotonic()
    while True:
        problems = _ask_kinds(server.url, written, kinds)
        if not any(problems.values()) or time.monotonic() - start >= wait:
            return problems
        time.sleep(_POLL)
