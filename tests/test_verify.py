"""End-to-end tests of `tbdoctor verify`: the real CLI runs the real job in real
venvs, reads the event files back, starts the real TensorBoard; every failure
is produced for real (read-only and full file systems, missing packages, a
taken port, a diverging learning rate)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import _BOOT, STACK, cached_venv, clean_env, layered_venv, tbdoctor

REFERENCE = {"weight": 2.0, "bias": 1.0, "tolerance": 0.05, "loss_bound": 0.015}
# An independent reader: TensorBoard's EventAccumulator, run by the env's python.
_READER = """
import json, sys
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.util.tensor_util import make_ndarray
out = {}
for run in sys.argv[1:]:
    acc = EventAccumulator(run, size_guidance={"scalars": 0, "tensors": 0})  # keep every point
    acc.Reload()
    out[run] = {tag: [[e.step, e.value] for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}
    for tag in acc.Tags()["tensors"]:  # tf.summary writes scalars as tensors
        if acc.SummaryMetadata(tag).plugin_data.plugin_name == "scalars":
            out[run][tag] = [[e.step, make_ndarray(e.tensor_proto).item()] for e in acc.Tensors(tag)]
print(json.dumps(out))
"""

# Independent of tbdoctor's PNG reader: every image as Pillow decodes it (step, size, mode, has red pixels).
_IMAGES = """
import io, json, sys
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
out = []
for run in sys.argv[1:]:
    acc = EventAccumulator(run, size_guidance={"images": 0})
    acc.Reload()
    for e in acc.Images("fit"):
        img = Image.open(io.BytesIO(e.encoded_image_string))
        out.append([e.step, img.width, img.height, img.mode, (220, 30, 30) in set(img.getdata())])
print(json.dumps(out))
"""

# The environment text the job wrote, as TensorBoard's loader reads it back.
_TEXT = """
import sys
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.util.tensor_util import make_ndarray
acc = EventAccumulator(sys.argv[1], size_guidance={"tensors": 0})
acc.Reload()
sys.stdout.write(make_ndarray(acc.Tensors("environment/text_summary")[0].tensor_proto).reshape(-1)[0].decode())
"""


def f32(value: float) -> float:
    return struct.unpack("<f", struct.pack("<f", value))[0]


def verify_json(*args: str, env=None, cwd=None) -> tuple[dict, subprocess.CompletedProcess]:
    proc = tbdoctor("verify", "--json", *args, env=env, cwd=cwd)
    assert proc.returncode in (0, 1), proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    return json.loads(proc.stdout), proc


def phases(report: dict) -> dict:
    return {p["name"] if not p.get("framework") or p["framework"] == "torch" else f"{p['name']}:{p['framework']}": p
            for p in report["phases"]}


def read_independently(python: Path, *runs: str) -> dict:
    proc = subprocess.run([str(python), "-c", _READER, *runs], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def leftover_processes(marker: str) -> list[str]:
    """Processes whose command line mentions ``marker`` (a run directory): orphans."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if marker in cmdline:
                found.append(f"{entry.name}: {cmdline}")
    return found


def assert_failed(report: dict, proc, phase: str, *reason_words: str) -> dict:
    assert proc.returncode == 1, proc.stdout
    assert report["status"] == "fail"
    failure = report["failure"]
    assert failure["phase"] == phase, failure
    for word in reason_words:
        assert word in failure["reason"], failure
    assert failure["fix"] and "\n" not in failure["reason"]
    assert any(p["name"] == phase and p["status"] == "fail" for p in report["phases"])
    return failure


@pytest.fixture(scope="module")
def torch_only(tmp_path_factory):
    """torch without tensorboardX or tensorboard (a real, incomplete env)."""
    return cached_venv(tmp_path_factory, "torch", "torch==2.13.0")


def mount_namespace(tmp_path: Path, options: str) -> list[str]:
    """A command prefix that runs in a private mount namespace where ``tmp_path``/mnt
    is a fresh tmpfs mounted with ``options`` (real ENOSPC / EROFS, no root needed
    where user namespaces are allowed)."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    prefix = ["unshare", "--user", "--map-root-user", "--mount", "--",
              "sh", "-c", f'mount -t tmpfs -o {options} tbdoctor-test "{mnt}" && exec "$@"', "sh"]
    if not shutil.which("unshare"):
        pytest.skip("needs unshare(1) to mount a small or read-only tmpfs")
    probe = subprocess.run([*prefix, "true"], capture_output=True, text=True, timeout=60)
    if probe.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs in a user namespace here: {probe.stderr.strip()}")
    return prefix


def tbdoctor_in(prefix: list[str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*prefix, sys.executable, "-c", _BOOT, *args], capture_output=True, text=True,
                          env=clean_env(), timeout=600)


# -- a healthy stack ------------------------------------------------------------


def test_healthy_stack_passes_and_an_independent_reader_agrees(stack_env, tmp_path):
    report, proc = verify_json("--python", str(stack_env.python), "--logdir", str(tmp_path))
    assert proc.returncode == 0, report.get("failure")
    assert report["schema"] == "tbdoctor.verify/1" and report["status"] == "pass"
    assert [p["name"] for p in report["phases"]] == ["import", "data", "train", "log", "readback", "server",
                                                     "browser"]
    assert all(p["status"] == "pass" and p["seconds"] >= 0 for p in report["phases"]), report["phases"]
    # The browser phase: a real Chromium drew the loss chart of both runs that logged a loss.
    assert "drew the loss curve of runs torch, torch-utils" in phases(report)["browser"]["detail"]
    shot = Path(report["screenshot"])
    assert shot.parent == Path(report["logdir"]) and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 20_000  # a drawn dashboard, not a blank page (a blank one is ~5 KB)
    assert report["device"] == "cpu" and report["steps"] == 200
    assert abs(report["params"]["weight"] - 2) <= 0.05 and abs(report["params"]["bias"] - 1) <= 0.05
    assert report["final_loss"] < 0.015
    run_dir = Path(report["logdir"])
    assert run_dir.parent == tmp_path and run_dir.name.startswith("verify-")
    assert set(report["runs"]) >= {"torch", "torch-utils", "torch/hparams"}

    read = read_independently(stack_env.python, str(run_dir / "torch"), str(run_dir / "torch-utils"),
                              str(run_dir / "torch" / "hparams"))
    main, sibling, hparams = (read[str(run_dir / r)] for r in ("torch", "torch-utils", "torch/hparams"))
    assert [s for s, _ in main["loss"]] == list(range(200))
    assert main["weight"][-1][1] == f32(report["params"]["weight"])
    assert main["bias"][-1][1] == f32(report["params"]["bias"])
    assert hparams["hparam/final_loss"] == [[200, f32(report["final_loss"])]]
    assert sibling["loss"] == main["loss"]  # torch.utils.tensorboard wrote the same series
    assert all(v == f32(0.1) for _, v in main["lr"])
    assert not leftover_processes(str(run_dir)), "TensorBoard was left running"
    # Every summary kind went written -> read back (values compared) -> served (its plugin asked).
    kinds = report["kinds"]
    assert list(kinds) == ["scalars", "histograms", "images", "text", "graph", "hparams"]
    for name, kind in kinds.items():
        assert (kind["written"], kind["read_back"], kind["served"]) == ("pass", "pass", "pass"), (name, kind)
    assert kinds["scalars"]["shown"] == "pass" and kinds["images"]["runs"] == ["torch", "torch-utils"]
    # Chromium drew both images at 64x48, and every histogram with one slice per step written (21).
    assert kinds["images"]["shown"] == "pass" and kinds["histograms"]["shown"] == "pass"
    assert "the images dashboard drew every image at its size" in phases(report)["browser"]["detail"]
    assert "the histograms dashboard drew every histogram, a slice per step" in phases(report)["browser"]["detail"]
    for kind in ("images", "histograms"):
        assert (run_dir / f"tensorboard-{kind}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # An independent check of the image both writers drew: the env's own Pillow decodes it to the size written.
    images = subprocess.run([str(stack_env.python), "-c", _IMAGES, str(run_dir / "torch"), str(run_dir / "torch-utils")],
                            capture_output=True, text=True, timeout=300)
    assert images.returncode == 0, images.stderr
    assert json.loads(images.stdout) == [[200, 64, 48, "RGB", True]] * 2  # white canvas, the red fitted line


def test_console_report_is_plain_when_piped_and_draws_the_curve(stack_env, tmp_path):
    proc = tbdoctor("verify", "--python", str(stack_env.python), "--logdir", str(tmp_path), "--no-server")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "\x1b[" not in out
    for line in ("import", "data", "train", "log", "readback"):
        assert any(row.split()[:3] == ["✓", line, "pass"] for row in out.splitlines()), out
    assert any(row.split()[:4] == ["-", "server", "skipped", "0.00"] for row in out.splitlines()), out
    assert any(row.split()[:5] == ["-", "browser", "skipped", "0.00", "s"] and row.endswith("--no-server")
               for row in out.splitlines()), out
    assert "Recovered: weight 2.00" in out and "Device: cpu" in out
    assert "Loss per step, read back from the event files" in out
    assert out.count("┤") == 8 and "step 199" in out
    # The per-kind table: every kind written and read back; nothing served or shown with --no-server.
    assert "Summary kind  written  read back  served  shown" in out
    for kind in ("scalars", "histograms", "images", "text", "graph", "hparams"):
        assert f"{kind.ljust(14)}✓        ✓          -       -" in out.splitlines(), kind
    assert not any(row != row.rstrip() for row in out.splitlines()), "trailing spaces"
    assert "Verified: the job trained, the event files read back exactly" in out
    assert "TensorBoard" not in out.split("Verified:")[1].splitlines()[0]  # no claim about a server it skipped
    run_dir = out.split("Logdir: ")[1].split()[0]
    assert out.rstrip().endswith(f"{stack_env.python.parent / 'tensorboard'} --logdir {run_dir} --host 127.0.0.1")


def live_on_a_terminal(argv: list[str], env: dict, timeout: float = 300) -> list[str]:
    """Run the CLI with a pseudo-terminal as stdout; returns the output as it had
    arrived after each read (escape sequences removed), in order."""
    import pty
    import re
    import select
    leader, follower = pty.openpty()
    child = subprocess.Popen([sys.executable, "-c", _BOOT, *argv], stdin=subprocess.DEVNULL, stdout=follower,
                             stderr=subprocess.PIPE, env=env, close_fds=True)
    os.close(follower)
    output, seen, deadline = b"", [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 0.5)
        if ready:
            try:
                output += os.read(leader, 65536)
            except OSError:  # the child closed the terminal
                break
            seen.append(re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", output.decode(errors="replace")))
        elif child.poll() is not None:
            break
    assert child.wait(timeout=30) == 0, child.stderr.read().decode()
    os.close(leader)
    return seen


def test_terminal_shows_each_phase_as_it_runs_and_skips_the_browser_when_there_is_none(stack_env, tmp_path):
    no_browser = tmp_path / "empty"  # no chromium on PATH, no Playwright browsers
    no_browser.mkdir()
    env = clean_env(PATH=str(no_browser), PLAYWRIGHT_BROWSERS_PATH=str(no_browser), TERM="xterm", COLUMNS="120")
    env.pop("NO_COLOR", None)
    seen = live_on_a_terminal(["verify", "--python", str(stack_env.python), "--logdir", str(tmp_path / "logs")], env)
    final = seen[-1]

    def first(text: str) -> int:
        return next(i for i, out in enumerate(seen) if text in out)
    done = first("Loss per step")  # the summary after the last phase
    import_line = first("import     pass")
    # Each phase's line is on screen before the job ends, and the spinner showed training as it went.
    assert import_line < first("readback   pass") < first("server     pass") < done, final
    assert first(" import ") < import_line  # the running phase's spinner came first
    assert first("step 1/200") < first("train      pass") < done
    assert "browser    skipped" in final and "pip install 'tbdoctor[browser]'" in final
    assert "apt-get install chromium" in final
    assert "Verified: the job trained, TensorBoard serves what was written" in final
    assert "--host 127.0.0.1" in final.split("To look at it in TensorBoard")[1]


def test_a_javascript_bundle_served_as_text_plain_is_the_blank_page_finding(stack_env, tmp_path):
    # What the Windows registry does to TensorBoard < 2.2 (.js -> text/plain), made real here:
    # this venv's mimetypes maps .js to text/plain and ignores TensorBoard's own correction.
    env = layered_venv(tmp_path, stack_env)
    (env.site / "_tbdoctor_test_mime.pth").write_text(
        "import mimetypes; mimetypes.add_type('text/plain', '.js'); mimetypes.add_type = "
        "lambda t, e, strict=True, _a=mimetypes.add_type: None if e == '.js' else _a(t, e, strict)\n")
    report, proc = verify_json("--python", str(env.python), "--logdir", str(tmp_path / "logs"))
    failure = assert_failed(report, proc, "browser", "index.js as text/plain", "the page stays blank")
    assert "HKEY_CLASSES_ROOT\\.js" in failure["fix"] and "text/javascript" in failure["fix"]
    assert phases(report)["server"]["status"] == "pass"  # the HTTP API alone did not see it
    assert Path(report["screenshot"]).is_file()


def test_the_browser_phase_recognises_no_dashboards_a_page_that_never_loads_and_a_broken_browser(stack_env, tmp_path, monkeypatch):
    """The phase itself against a real TensorBoard with no event files, a port that never answers,
    and a browser that cannot start."""
    from tbdoctor.verify import browser

    written = {"torch": {"scalars": {"loss": [[0, 1.0]]}}}
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    empty = tmp_path / "empty"
    empty.mkdir()
    board = subprocess.Popen([str(stack_env.python), "-m", "tensorboard.main", "--logdir", str(empty),
                              "--host", "127.0.0.1", "--port", str(port)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        for _ in range(240):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/data/runs", timeout=1)
                break
            except OSError:
                time.sleep(0.25)
        phase, shot = browser.phase(f"http://127.0.0.1:{port}/", written, str(tmp_path), 60)
    finally:
        os.killpg(board.pid, signal.SIGTERM)
        board.wait(timeout=30)
    assert phase.status == "fail" and "No dashboards are active" in phase.detail, phase
    assert str(empty) not in phase.fix and str(tmp_path) in phase.fix and Path(shot).is_file()

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as silent:  # accepts, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/"
        phase, shot = browser.phase(url, written, str(tmp_path), 3)
    assert phase.status == "fail" and "never loaded" in phase.detail and shot == "", phase
    assert "NO_PROXY" in phase.fix

    broken = tmp_path / "broken-chromium"  # a browser that cannot start: no verdict on TensorBoard
    broken.write_text("#!/bin/sh\necho 'cannot open display' >&2\nexit 1\n")
    broken.chmod(0o755)
    monkeypatch.setenv("TBDOCTOR_BROWSER", str(broken))
    phase, shot = browser.phase(url, written, str(tmp_path), 30)
    assert phase.status == "skipped" and f"cannot start the browser {broken}" in phase.detail, phase


def test_distributed_with_gloo_and_two_processes(stack_env, tmp_path):
    report, proc = verify_json("--python", str(stack_env.python), "--logdir", str(tmp_path),
                               "--distributed", "--nproc", "2", "--no-browser")
    assert proc.returncode == 0, report.get("failure")
    dist = phases(report)["distributed"]
    assert dist["status"] == "pass", dist
    details = report["distributed"]
    assert details["backend"] == "gloo" and details["world_size"] == 2
    assert [r["rank"] for r in details["ranks"]] == [0, 1]
    assert details["ranks"][0]["weight"] == details["ranks"][1]["weight"]
    assert abs(report["params"]["weight"] - 2) <= 0.05
    assert "--nnodes 2" in details["multi_node_command"] and "--rdzv-endpoint" in details["multi_node_command"]
    assert Path(details["job_script"]).is_file()
    read = read_independently(stack_env.python, str(Path(report["logdir"]) / "torch"))
    assert len(read[str(Path(report["logdir"]) / "torch")]["loss"]) == 200  # rank 0 alone wrote, once


# -- failures users must understand --------------------------------------------


def test_logdir_is_a_file(stack_env, tmp_path):
    blocker = tmp_path / "logs"
    blocker.write_text("not a directory\n")
    report, proc = verify_json("--python", str(stack_env.python), "--logdir", str(blocker))
    failure = assert_failed(report, proc, "log", str(blocker), "is a file")
    assert "--logdir" in failure["fix"]
    assert phases(report)["train"]["status"] == "pass"  # training itself still verified
    assert phases(report)["readback"]["status"] == "skipped"
    assert blocker.read_text() == "not a directory\n"


def test_logdir_not_writable(stack_env, tmp_path):
    if os.geteuid() != 0:  # permissions are real for a normal user...
        logs = tmp_path / "logs"
        logs.mkdir(mode=0o500)
        report, proc = verify_json("--python", str(stack_env.python), "--logdir", str(logs))
        assert_failed(report, proc, "log", "not writable", "Permission denied")
        return
    # ...but root ignores them: a read-only file system stops root too.
    prefix = mount_namespace(tmp_path, "ro,size=1m")
    proc = tbdoctor_in(prefix, "verify", "--json", "--python", str(stack_env.python), "--logdir", str(tmp_path / "mnt"))
    report = json.loads(proc.stdout)
    failure = assert_failed(report, proc, "log", "read-only file system")
    assert "--logdir" in failure["fix"] and "Traceback" not in proc.stderr


def test_disk_full_while_writing(stack_env, tmp_path):
    prefix = mount_namespace(tmp_path, "size=64k")  # room for the first events, not for all of them
    proc = tbdoctor_in(prefix, "verify", "--json", "--python", str(stack_env.python), "--logdir", str(tmp_path / "mnt"))
    assert "Traceback" not in proc.stderr, proc.stderr
    report = json.loads(proc.stdout)
    failure = assert_failed(report, proc, "log", "disk full", "No space left on device")
    assert "free space" in failure["fix"]
    assert phases(report)["train"]["status"] == "pass"


def test_tensorboardx_missing(torch_only, tmp_path):
    report, proc = verify_json("--python", str(torch_only.python), "--logdir", str(tmp_path))
    failure = assert_failed(report, proc, "import", "No module named 'tensorboardX'")
    assert failure["fix"] == f"{torch_only.python} -m pip install tensorboardX"
    assert phases(report)["train"]["status"] == "pass"
    assert phases(report)["log"]["status"] == "skipped"


def test_tensorboard_missing_fails_readback_and_server_but_training_is_verified(torch_only, tmp_path):
    env = layered_venv(tmp_path, torch_only)  # torch + tensorboardX, really installed, no tensorboard
    subprocess.run([str(torch_only.python), "-m", "pip", "install", "-q", "--target", str(env.site),
                    "-c", str(Path(__file__).resolve().parent.parent / "constraints.txt"), "tensorboardX"],
                   check=True, capture_output=True, text=True, timeout=600)
    report, proc = verify_json("--python", str(env.python), "--logdir", str(tmp_path / "logs"))
    failure = assert_failed(report, proc, "readback", "tensorboard is not installed")
    assert failure["fix"] == f"{env.python} -m pip install tensorboard"
    got = phases(report)
    assert got["train"]["status"] == "pass" and got["log"]["status"] == "pass"
    assert got["server"]["status"] == "fail" and "tensorboard is not installed" in got["server"]["detail"]


def test_port_already_taken(stack_env, tmp_path):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        report, proc = verify_json("--python", str(stack_env.python), "--logdir", str(tmp_path), "--port", str(port))
    failure = assert_failed(report, proc, "server", f"port {port}", "already in use")
    assert "--port" in failure["fix"]
    assert phases(report)["readback"]["status"] == "pass"
    assert not leftover_processes(report["logdir"])


def test_server_not_answering_in_time(stack_env, tmp_path):
    report, proc = verify_json("--python", str(stack_env.python), "--logdir", str(tmp_path),
                               "--server-timeout", "0.05")
    failure = assert_failed(report, proc, "server", "did not answer", "within 0.05 s")
    assert "--server-timeout" in failure["fix"] and "tensorboard.main" in failure["fix"]
    assert not leftover_processes(report["logdir"]), "TensorBoard was left running after the timeout"


def test_nan_loss(stack_env, tmp_path):
    proc = tbdoctor("verify", "--python", str(stack_env.python), "--logdir", str(tmp_path), "--lr", "10")
    assert proc.returncode == 1
    assert "Traceback" not in proc.stdout + proc.stderr
    out = proc.stdout
    failure_line = next(line for line in out.splitlines() if "Failed in the" in line)
    assert "Failed in the train phase: the loss became" in failure_line and "diverged" in failure_line
    assert "lower the learning rate (--lr" in out
    report, _ = verify_json("--python", str(stack_env.python), "--logdir", str(tmp_path), "--lr", "10", "--no-server")
    assert report["failure"]["phase"] == "train"
    assert phases(report)["readback"]["status"] == "pass"  # the steps up to the divergence were logged intact


def test_serve_keeps_tensorboard_until_ctrl_c(stack_env, tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", _BOOT, "verify", "--python", str(stack_env.python),
                             "--logdir", str(tmp_path), "--serve", "--no-browser"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=clean_env())
    try:
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("TensorBoard is serving"):
                break
        url = lines[-1].split()[3]
        assert url.startswith("http://127.0.0.1:"), lines
        run_dir = next(line.split(": ", 1)[1].strip() for line in lines if line.startswith("Logdir: "))
        deadline = time.monotonic() + 60  # TensorBoard (re)loads runs in the background
        while True:
            runs = json.loads(urllib.request.urlopen(url + "data/runs", timeout=30).read())
            if "torch" in runs or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert "torch" in runs
        assert leftover_processes(run_dir)  # still serving
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0  # verification passed; Ctrl-C only ends serving
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not leftover_processes(run_dir), "TensorBoard outlived Ctrl-C"


def test_truncated_and_corrupt_event_files_are_named(stack_env, tmp_path):
    from tbdoctor.target import choose
    from tbdoctor.verify import readback

    report, proc = verify_json("--python", str(stack_env.python), "--logdir", str(tmp_path), "--no-server")
    assert proc.returncode == 0
    [events] = (Path(report["logdir"]) / "torch").glob("events.out.tfevents.*")
    target = choose(str(stack_env.python))
    data = events.read_bytes()
    events.write_bytes(data[:-7])  # cut inside the last record
    phase, _ = readback.phase(target, report["logdir"], {}, 120)
    assert phase.status == "fail" and str(events) in phase.detail and "truncated or corrupt" in phase.detail
    damaged = bytearray(data)
    damaged[len(data) // 2] ^= 0xFF  # flip a byte in the middle: a checksum error
    events.write_bytes(bytes(damaged))
    phase, _ = readback.phase(target, report["logdir"], {}, 120)
    assert phase.status == "fail" and str(events) in phase.detail and "crc" in phase.detail


def test_check_then_verify_has_one_combined_exit_code_and_one_json_object(stack_env, torch_only):
    proc = tbdoctor("check", "--verify", "--json", "--python", str(stack_env.python))
    report = json.loads(proc.stdout)
    assert report["schema"] == "tbdoctor.report/1" and report["verify"]["schema"] == "tbdoctor.verify/1"
    check_failed = report["summary"]["error"] > 0
    assert report["verify"]["status"] == "pass"
    assert proc.returncode == (1 if check_failed else 0)
    proc = tbdoctor("check", "--verify", "--python", str(torch_only.python))
    assert proc.returncode == 1  # the job fails (no tensorboardX) whatever the check said
    assert "Failed in the import phase" in proc.stdout and "Traceback" not in proc.stderr


# -- TensorFlow -----------------------------------------------------------------


@pytest.fixture(scope="module")
def tf_env(tmp_path_factory):
    try:
        return cached_venv(tmp_path_factory, "tfstack", *STACK, "tensorflow-cpu")
    except subprocess.CalledProcessError as exc:
        pytest.skip(f"cannot build a TensorFlow venv here: {exc.stderr.strip().splitlines()[-1:]}")


def test_framework_all_runs_tensorflow_too(tf_env, tmp_path):
    report, proc = verify_json("--python", str(tf_env.python), "--logdir", str(tmp_path), "--framework", "all",
                               "--no-browser")
    assert proc.returncode == 0, report.get("failure")
    got = phases(report)
    assert all(got[f"{name}:tf"]["status"] == "pass" for name in ("import", "data", "train", "log"))
    assert "tf" in report["runs"]
    tf = report["frameworks"]["tf"]
    assert abs(tf["params"]["weight"] - 2) <= 0.05 and tf["final_loss"] < 0.015
    run = str(Path(report["logdir"]) / "tf")
    read = read_independently(tf_env.python, run)[run]
    assert [s for s, _ in read["loss"]] == list(range(200))
    assert read["weight"][-1][1] == f32(tf["params"]["weight"])
    # tf.summary wrote every kind too; each was read back and served with its values (the image, the
    # histograms' bucket counts, the text, the graph's MatMul node); hparams through the torch run's session.
    for name, kind in report["kinds"].items():
        assert "tf" in kind["runs"] and (kind["read_back"], kind["served"]) == ("pass", "pass"), (name, kind)


def test_bad_flags_are_usage_errors(stack_env):
    for args in (("--lr", "-1"), ("--steps", "5000"), ("--port", "70000"), ("--framework", "tf", "--distributed"),
                 ("--serve", "--no-server"), ("--nproc", "2"), ("--timeout", "nan")):
        proc = tbdoctor("verify", "--python", str(stack_env.python), *args)
        assert proc.returncode == 2, (args, proc.stderr)
        assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr


def test_a_job_that_runs_out_of_time_fails_the_phase_it_was_in(stack_env, tmp_path):
    report, proc = verify_json("--python", str(stack_env.python), "--logdir", str(tmp_path), "--timeout", "0.5")
    failure = assert_failed(report, proc, "import", "timed out after", "during the import phase")
    assert failure["fix"] == "raise --timeout"
    assert not leftover_processes(str(tmp_path))


def test_curve_and_contract_from_values():
    from tbdoctor.render.verify_console import curve_lines
    from tbdoctor.verify.result import JobRun, Outcome, Phase

    lines = curve_lines([(s, 10.0 ** -(s / 10)) for s in range(30)] + [(30, float("nan"))], width=30, height=4)
    assert len(lines) == 5 and lines[0].lstrip().startswith("1 ┤•") and lines[3].lstrip().startswith("0.00126 ┤")
    assert sum(line.count("•") for line in lines[:4]) == 30  # 30 finite points, one per column, NaN left out
    assert lines[3].endswith("•") and lines[4].split() == ["step", "0", "step", "29"]
    assert curve_lines([(0, float("nan"))]) == ["(no finite positive loss values to draw)"]
    job = JobRun("torch", [Phase("import", "pass", framework="torch"), Phase("train", "fail", 1.0, "why", "do", "torch")])
    data = Outcome({"python": "/p", "chosen_by": "self"}, "/l", "/l/run", jobs=[job]).to_dict()
    assert data["status"] == "fail" and data["failure"] == {"phase": "train", "reason": "why", "fix": "do"}
    assert data["logdir"] == "/l/run" and data["phases"][1] == {"name": "train", "status": "fail", "seconds": 1.0,
                                                                "detail": "why", "fix": "do", "framework": "torch"}


def test_forced_device_that_is_unusable_and_tensorflow_absent(stack_env, tmp_path):
    report, proc = verify_json("--python", str(stack_env.python), "--logdir", str(tmp_path), "--device", "cuda")
    assert_failed(report, proc, "data", "--device cuda", "torch cannot use CUDA here")
    assert phases(report)["train"]["status"] == "skipped"
    report, proc = verify_json("--python", str(stack_env.python), "--logdir", str(tmp_path), "--framework", "tf")
    failure = assert_failed(report, proc, "import", "tensorflow cannot be imported", "No module named 'tensorflow'")
    assert failure["fix"] == f"{stack_env.python} -m pip install tensorflow"


# -- summary kinds: one failing kind is its own result; the scalars still pass --


def test_a_model_add_graph_cannot_trace_fails_the_graph_kind_and_nothing_else(stack_env, tmp_path):
    # PYTORCH_JIT=0 (the documented switch that turns TorchScript off for debugging) makes
    # torch.jit.trace return the module untraced: add_graph then fails for real.
    report, proc = verify_json("--python", str(stack_env.python), "--logdir", str(tmp_path), "--no-browser",
                               env=clean_env(PYTORCH_JIT="0"))
    assert proc.returncode == 1 and report["status"] == "fail"
    assert all(p["status"] in ("pass", "skipped") for p in report["phases"]), report["phases"]
    assert phases(report)["server"]["status"] == "pass"
    failure = report["failure"]
    assert failure["kind"] == "graph" and failure["phase"] == "log"
    assert "add_graph cannot trace the model: PYTORCH_JIT=0" in failure["reason"]
    assert "torch 2.13.0" in failure["reason"] and "'Linear' object has no attribute 'graph'" in failure["reason"]
    assert failure["fix"].startswith("unset PYTORCH_JIT")
    kinds = report["kinds"]
    assert (kinds["graph"]["written"], kinds["graph"]["read_back"], kinds["graph"]["served"]) == ("fail", None, None)
    for name in ("scalars", "histograms", "images", "text", "hparams"):
        assert kinds[name]["served"] == "pass", (name, kinds[name])
    assert "not written: graph" in phases(report)["log"]["detail"]


def test_pillow_built_for_another_python_fails_images_and_names_pillow(stack_env, tmp_path):
    # A real Pillow wheel for another CPython (what copying site-packages between Pythons does):
    # its _imaging extension cannot load, so add_image fails, and so does TensorBoard, which imports Pillow.
    env = layered_venv(tmp_path, stack_env)
    other = "3.12" if sys.version_info[:2] != (3, 12) else "3.11"
    subprocess.run([str(env.python), "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-deps",
                    "--target", str(env.site), "--python-version", other, "--only-binary=:all:", "pillow"],
                   check=True, capture_output=True, text=True, timeout=600)
    report, proc = verify_json("--python", str(env.python), "--logdir", str(tmp_path / "logs"), "--no-browser")
    assert proc.returncode == 1
    kinds = report["kinds"]
    images = kinds["images"]
    assert images["written"] == "fail" and images["read_back"] is None
    assert "add_image: Pillow" in images["detail"] and "cannot be loaded by Python" in images["detail"]
    assert "cannot import name '_imaging'" in images["detail"]
    assert images["fix"] == f"{env.python} -m pip install --force-reinstall pillow"
    # The scalars were written and read back exactly; the server fails naming the same cause.
    assert (kinds["scalars"]["written"], kinds["scalars"]["read_back"]) == ("pass", "pass")
    assert kinds["histograms"]["read_back"] == "pass" and kinds["graph"]["read_back"] == "pass"
    assert phases(report)["readback"]["status"] == "pass"
    failure = assert_failed(report, proc, "server", "TensorBoard cannot start: Pillow cannot be imported")
    assert failure["fix"] == f"{env.python} -m pip install --force-reinstall pillow"


def test_summary_kinds_compare_values_and_render_as_a_table():
    from rich.console import Console

    from tbdoctor.render.verify_console import render
    from tbdoctor.verify import kinds as kinds_mod
    from tbdoctor.verify.result import JobRun, Outcome, Phase

    written = {"torch": {"scalars": {"loss": [[0, 1.0]]}, "histograms": ["residuals"],
                         "histogram_counts": {"residuals": [[0, 1024], [10, 1024]]}, "images": {"fit": [48, 64, 3]},
                         "text": ["t"], "text_values": {"t": "hello"}, "graph": True, "graph_op": "aten::linear"}}
    found = {"runs": {"torch": {"histogram_counts": {"residuals": [[0, 1024.0], [10, 1000.0]]},
                                "images": {"fit": [[5, 64, 48, 64, 48, ""]]}, "text_values": {"t": "hello"},
                                "graph_ops": ["IO Node", "prim::GetAttr"]}}}
    problems = kinds_mod.read_back(written, found)
    assert problems == {"histograms": "run torch, histogram residuals, step 10: the buckets hold 1000 samples, "
                                      "1024 were written",
                        "graph": "run torch: the graph has no aten::linear node (the linear layer)"}
    found["runs"]["torch"]["images"]["fit"][0][5] = "bad CRC in the IDAT chunk"
    assert kinds_mod.read_back(written, found)["images"] == \
        "run torch, image fit: the PNG does not decode (bad CRC in the IDAT chunk)"

    job = JobRun("torch", [Phase(n, "pass", framework="torch") for n in ("import", "data", "train", "log")],
                 written=written, kind_errors={"hparams": {"detail": "add_hparams failed: boom", "fix": "do this"}})
    outcome = Outcome({"python": "/p", "chosen_by": "self"}, "/l", "/l/run", jobs=[job],
                      phases=[Phase("readback", "pass")])
    outcome.kinds = kinds_mod.from_jobs(outcome.jobs)
    kinds_mod.phase_stage(outcome.kinds, "read_back", "pass")
    kinds_mod.judge(outcome.kinds, "read_back", problems, "check the disk", written)
    data = outcome.to_dict()
    assert data["status"] == "fail" and data["failure"]["kind"] == "histograms"  # the first failed kind
    assert data["kinds"]["hparams"] == {"written": "fail", "read_back": None, "served": None, "shown": None,
                                        "runs": [], "detail": "add_hparams failed: boom", "fix": "do this"}
    assert data["kinds"]["text"]["read_back"] == "pass" and data["kinds"]["images"]["read_back"] == "pass"
    console = Console(width=200, color_system=None, force_terminal=False, record=True)
    render(outcome, console)
    out = console.export_text()
    assert "Summary kind  written  read back  served  shown" in out
    assert "scalars       ✓        ✓          -       -" in out
    assert "histograms    ✓        ✗          -       -" in out and "hparams       ✗        -" in out
    assert "  hparams: add_hparams failed: boom" in out and "    → do this" in out
    assert out.rstrip().splitlines()[-1].startswith(
        "✗ Scalars verified (the event files read back exactly), but summary kinds failed: histograms (not read back)")


def test_each_plugin_is_asked_and_a_difference_is_named(stack_env, tmp_path):
    """The served stage against a real TensorBoard on a real run: what was written is served
    by each plugin; a claim that differs (samples, size, node, metric value) is named."""
    from tbdoctor.target import Target
    from tbdoctor.verify import server as server_mod

    report, proc = verify_json("--python", str(stack_env.python), "--logdir", str(tmp_path), "--no-server")
    assert proc.returncode == 0, report.get("failure")
    text = subprocess.run([str(stack_env.python), "-c", _TEXT, str(Path(report["logdir"]) / "torch")],
                          capture_output=True, text=True, timeout=300)
    assert text.returncode == 0, text.stderr
    written = {"torch": {"histogram_counts": {"residuals": [[0, 1024], [199, 1024]], "params/weight": [[10, 1]]},
                         "images": {"fit": [48, 64, 3]}, "text_values": {"environment/text_summary": text.stdout},
                         "graph_op": "aten::linear"},
               "torch-utils": {"images": {"fit": [48, 64, 3]}},
               "torch/hparams": {"hparams_metrics": ["hparam/final_loss"],
                                 "scalars": {"hparam/final_loss": [[200, report["final_loss"]]]}}}
    kinds = ["histograms", "images", "text", "graph", "hparams"]
    target = Target.from_dict({"python": str(stack_env.python), "chosen_by": "--python",
                               "version": "%d.%d.%d" % sys.version_info[:3]})
    live = server_mod.Server(target, report["logdir"], None)
    try:
        phase, _runs = server_mod.check(live, {}, 120)
        assert phase.status == "pass", phase
        assert server_mod.check_kinds(live, written, kinds, 30) == {kind: "" for kind in kinds}
        written["torch"]["histogram_counts"]["residuals"][1][1] = 1000
        written["torch-utils"]["images"]["fit"] = [48, 32, 3]
        written["torch"]["text_values"]["environment/text_summary"] += "\n| numpy | 0.0 |"
        written["torch"]["graph_op"] = "aten::conv2d"
        written["torch/hparams"]["scalars"]["hparam/final_loss"][0][1] += 1
        problems = server_mod.check_kinds(live, written, kinds, 1)
    finally:
        live.stop()
    assert problems == {
        "histograms": "run torch: histogram residuals step 199 has 1024 samples, 1000 were written",
        "images": "run torch-utils: image fit is served 64x48, 32x48 was written",
        "text": "run torch: text environment/text_summary is served without 'numpy'",
        "graph": "run torch: the served graph has no aten::conv2d node",
        "hparams": f"the hparams session torch/hparams has hparam/final_loss = {f32(report['final_loss'])!r}, "
                   f"{report['final_loss'] + 1!r} was written"}
    assert not leftover_processes(report["logdir"])
