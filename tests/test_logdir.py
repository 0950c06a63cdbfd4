"""End-to-end tests of `tbdoctor logdir DIR` and `check --logdir DIR`: real event
files written by tensorboardX in the cached stack venv, then cut short, corrupted,
left unflushed, merged or moved away; the real CLI reads them with the target's
own TensorBoard loader."""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import STACK, by_id, cached_venv, check_json, make_venv, tbdoctor

# Writes the logdirs every test reads: argv[1] is the root. tensorboardX is the writer
# under test in this product; its event files are what TensorBoard reads.
_WRITER = r"""
import os, sys, time
from tensorboardX import SummaryWriter
root = sys.argv[1]
def write(folder, steps=range(10), tag="loss"):
    w = SummaryWriter(os.path.join(root, folder))
    for i in steps:
        w.add_scalar(tag, 1.0 / (i + 1), i)
    w.close()
write("healthy/run_a"); write("healthy/run_b")
w = SummaryWriter(os.path.join(root, "healthy/run_b")); w.add_text("note", "hello", 0); w.close()
write("truncated/run"); write("corrupt/run")
write("merged/run", range(0, 10)); time.sleep(1.1); write("merged/run", range(5, 15))
write("elsewhere/runs/Dec07_host")
os.makedirs(os.path.join(root, "elsewhere/logs"))
w = SummaryWriter(os.path.join(root, "unflushed/empty"), flush_secs=600)
w.add_scalar("loss", 1.0, 0)  # the job is killed before the writer flushes anything
h = SummaryWriter(os.path.join(root, "unflushed/header"), flush_secs=600)
h.flush()  # the header reaches the file; the scalar after it does not
h.add_scalar("loss", 1.0, 0)
os._exit(0)
"""


def only_file(folder: Path) -> Path:
    (path,) = glob.glob(str(folder / "events.out.tfevents.*"))
    return Path(path)


@pytest.fixture(scope="module")
def logs(stack_env, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("logs")
    subprocess.run([str(stack_env.python), "-c", _WRITER, str(root)], check=True, capture_output=True, timeout=300)
    cut = only_file(root / "truncated/run")
    os.truncate(cut, cut.stat().st_size - 5)  # the last record loses its tail, as in a killed job
    bad = only_file(root / "corrupt/run")
    data = bytearray(bad.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte in a middle record's payload
    bad.write_bytes(data)
    return root


def logdir_json(stack_env, path, cwd=None) -> tuple[dict, subprocess.CompletedProcess]:
    proc = tbdoctor("logdir", str(path), "--python", str(stack_env.python), "--json", cwd=cwd)
    assert proc.returncode in (0, 1), proc.stderr
    return json.loads(proc.stdout), proc


def checks(report: dict, check_id: str) -> list[dict]:
    return [c for c in report["checks"] if c["id"] == check_id]


def test_healthy_logdir_lists_runs_tags_and_steps(stack_env, logs):
    proc = tbdoctor("logdir", str(logs / "healthy"), "--python", str(stack_env.python))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "run_a" in proc.stdout and "run_b" in proc.stdout
    assert "scalars: loss" in proc.stdout and "text: note" in proc.stdout, proc.stdout
    assert "\x1b[" not in proc.stdout  # plain when piped
    report, _ = logdir_json(stack_env, logs / "healthy")
    runs = {r["name"]: r for r in report["logdir"]["runs"]}
    assert runs["run_a"]["tags"] == {"scalars": ["loss"]} and runs["run_a"]["steps"] == [0, 9]
    assert runs["run_b"]["last_write"] > 0
    assert [c["status"] for c in report["checks"]] == ["ok"]


def test_cut_short_file_is_named_with_its_records_and_flush(stack_env, logs):
    report, proc = logdir_json(stack_env, logs / "truncated")
    (found,) = checks(report, "tensorboard.logdir-truncated")
    assert found["status"] == "warning" and str(only_file(logs / "truncated/run")) in found["title"]
    assert "after 10 record(s)" in found["title"]  # the header and 9 of the 10 scalars: the 10th is cut
    assert "flush()" in found["hint"] and "flush_secs" in found["hint"]
    assert proc.returncode == 0  # a warning


def test_unflushed_writers_leave_an_empty_or_header_only_file(stack_env, logs):
    report, _ = logdir_json(stack_env, logs / "unflushed")
    found = {Path(c["subject"]).parent.name: c for c in checks(report, "tensorboard.logdir-no-data")}
    assert found["empty"]["title"].endswith("is empty")
    assert found["header"]["title"].endswith("holds only its header (1 record(s), no data)")
    assert all("flush" in c["hint"] for c in found.values())


def test_corrupt_record_is_a_crc_error_in_check_too(stack_env, logs):
    report, proc = logdir_json(stack_env, logs / "corrupt")
    (found,) = checks(report, "tensorboard.logdir-corrupt")
    assert found["status"] == "error" and "crc32" in found["detail"] and proc.returncode == 1
    full, _ = check_json("--python", str(stack_env.python), "--only", "tensorboard", "--logdir", str(logs / "corrupt"))
    assert [c["status"] for c in by_id(full, "tensorboard.logdir-corrupt")] == ["error"]
    assert by_id(full, "tensorboard.version")  # the rest of the section is still there


def test_two_writers_in_one_run_are_named(stack_env, logs):
    report, _ = logdir_json(stack_env, logs / "merged")
    (found,) = checks(report, "tensorboard.logdir-runs-merged")
    assert "5-9" in found["detail"] and "own log_dir" in found["hint"]


def test_two_writers_in_one_file_are_named(stack_env, logs, tmp_path):
    (tmp_path / "run").mkdir()
    first, second = only_file(logs / "healthy/run_a"), only_file(logs / "elsewhere/runs/Dec07_host")
    joined = tmp_path / "run" / first.name  # one file holding two writers' records, one after the other
    joined.write_bytes(first.read_bytes() + second.read_bytes())
    report, _ = logdir_json(stack_env, tmp_path)
    (found,) = checks(report, "tensorboard.logdir-runs-merged")
    assert found["title"] == f"2 writers wrote into one event file, {joined}"


def test_empty_logdir_points_at_the_writers_runs_folder(stack_env, logs):
    report, proc = logdir_json(stack_env, "logs", cwd=logs / "elsewhere")  # relative, as a user types it
    (found,) = checks(report, "tensorboard.logdir-empty")
    assert proc.returncode == 1 and "No dashboards are active" in found["detail"]
    assert found["fixes"][0]["command"] == f"tensorboard --logdir {logs / 'elsewhere/runs/Dec07_host'}"


def test_thousands_of_runs_are_slow(stack_env, logs, tmp_path):
    event = only_file(logs / "healthy/run_a")
    for i in range(1000):
        (tmp_path / f"trial{i:04d}").mkdir()
        shutil.copy(event, tmp_path / f"trial{i:04d}" / event.name)
    report, proc = logdir_json(stack_env, tmp_path)
    assert report["logdir"]["run_count"] == 1000 and len(checks(report, "tensorboard.logdir-many-runs")) == 1
    text = tbdoctor("logdir", str(tmp_path), "--python", str(stack_env.python)).stdout
    assert "and 950 more runs" in text


def test_remote_scheme_without_a_reader_says_what_to_install(stack_env):
    report, proc = logdir_json(stack_env, "s3://bucket/experiments")
    (found,) = checks(report, "tensorboard.logdir-scheme")
    assert found["status"] == "error" and proc.returncode == 1
    assert found["fixes"][0]["command"].endswith("pip install boto3")


def test_remote_scheme_with_tensorflow_needs_tensorflow_io(tmp_path_factory):
    tfstack = cached_venv(tmp_path_factory, "tfstack", *STACK, "tensorflow-cpu")  # shared with the e2e tests
    report, _ = logdir_json(tfstack, "hdfs://namenode/experiments")
    (found,) = checks(report, "tensorboard.logdir-scheme")
    assert "uses TensorFlow" in found["detail"] and found["fixes"][0]["command"].endswith("install tensorflow-io")
    report, _ = logdir_json(tfstack, "gs://bucket/experiments")  # TensorFlow reads gs:// itself
    assert [c["status"] for c in checks(report, "tensorboard.logdir-scheme")] == ["ok"]


def test_environment_without_tensorboard_says_install_it(logs, tmp_path):
    bare = make_venv(tmp_path)
    proc = tbdoctor("logdir", str(logs / "healthy"), "--python", str(bare.python), "--json")
    report = json.loads(proc.stdout)
    (found,) = checks(report, "tensorboard.logdir-unreadable")
    assert proc.returncode == 1 and found["fixes"][0]["command"].endswith("pip install tensorboard")


@pytest.mark.parametrize("bad", ["missing-folder", "file"])
def test_bad_logdir_is_one_line_exit_2(stack_env, tmp_path, bad):
    path = tmp_path / "x"
    if bad == "file":
        path.write_text("")
    proc = tbdoctor("logdir", str(path), "--python", str(stack_env.python))
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1 and not proc.stdout, proc.stderr
    proc = tbdoctor("check", "--logdir", str(path), "--python", str(stack_env.python), "--only", "python")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


def test_logdir_with_saved_facts_is_a_usage_error(tmp_path):
    proc = tbdoctor("check", "--facts", str(tmp_path / "facts.json"), "--logdir", str(tmp_path))
    assert proc.returncode == 2 and "--facts" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
