"""tbdoctor leaves nothing behind: temporary folders go on every exit path
(success, failure, Ctrl-C, SIGTERM) unless the user keeps them, and its own
state (snapshots, cache) is private (folders 0700, metadata files 0600)."""

from __future__ import annotations

import json
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import _BOOT, clean_env, make_venv, tbdoctor


def _temp(tmp_path: Path) -> tuple[Path, dict]:
    temp = tmp_path / "systemp"
    temp.mkdir()
    return temp, clean_env(TMPDIR=str(temp))


def test_verify_that_passes_leaves_an_empty_temp_folder_and_keep_keeps_the_logdir(stack_env, tmp_path):
    temp, env = _temp(tmp_path)
    proc = tbdoctor("verify", "--json", "--python", str(stack_env.python), env=env)  # TensorBoard too
    report = json.loads(proc.stdout)
    assert proc.returncode == 0 and report["status"] == "pass", report.get("failure")
    assert report["logdir_kept"] is False and not Path(report["logdir"]).exists()
    assert list(temp.iterdir()) == []  # nor TensorBoard's .tensorboard-info

    proc = tbdoctor("verify", "--python", str(stack_env.python), "--no-server", "--keep", "--steps", "20", env=env)
    assert proc.returncode == 1 and "did not converge" in proc.stdout, proc.stdout  # 20 steps are too few: kept anyway
    [kept] = temp.iterdir()
    assert kept.name.startswith("tbdoctor-verify-") and list(kept.glob("verify-*/torch/events.out.tfevents.*"))
    assert f"Logdir: {kept}" in proc.stdout and "removed on exit" not in proc.stdout


def test_verify_that_fails_leaves_an_empty_temp_folder(tmp_path):
    temp, env = _temp(tmp_path)
    bare = make_venv(tmp_path)  # no torch: the import phase fails
    proc = tbdoctor("verify", "--python", str(bare.python), env=env)
    assert proc.returncode == 1 and "Failed in the import phase" in proc.stdout, proc.stdout
    assert "(removed on exit; pass --keep or --logdir to keep it)" in proc.stdout
    assert list(temp.iterdir()) == []


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_verify_interrupted_leaves_an_empty_temp_folder(stack_env, tmp_path, signum):
    temp, env = _temp(tmp_path)
    proc = subprocess.Popen([sys.executable, "-c", _BOOT, "verify", "--python", str(stack_env.python),
                             "--no-server", "--steps", "1000"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 120
        while not list(temp.glob("tbdoctor-verify-*")) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert list(temp.glob("tbdoctor-verify-*")), "verify never started"
        time.sleep(1.5)  # the job is importing torch
        proc.send_signal(signum)
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130 and "interrupted" in err and "Traceback" not in err, err
    assert list(temp.iterdir()) == []


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_cache_folder_is_private(tmp_path):
    cache = tmp_path / "cache" / "tbdoctor" / "facts"
    env = clean_env(TBDOCTOR_CACHE_DIR=str(cache))
    env.pop("TBDOCTOR_NO_CACHE")
    proc = tbdoctor("check", "--json", "--python", str(make_venv(tmp_path).python), env=env)
    assert proc.returncode in (0, 1), proc.stderr
    [entry] = cache.glob("*.json")
    assert [_mode(p) for p in (cache.parent.parent, cache.parent, cache, entry)] == [0o700, 0o700, 0o700, 0o600]


def test_snapshots_are_private_and_redacted(tmp_path, monkeypatch):
    from tbdoctor import redact, snapshot
    from tbdoctor.target import Target
    state = tmp_path / "state"
    monkeypatch.setenv("TBDOCTOR_STATE_DIR", str(state))
    monkeypatch.setenv("CORP_INDEX_TOKEN", "tok-3f9a8b7c6d5e4f")
    redact.reset()
    try:
        command = "pip install -i https://ci:p@ss@w0rd@corp.example/simple torch  # tok-3f9a8b7c6d5e4f"
        snap = snapshot.create(Target("/venv/bin/python", "--python", (3, 11, 0)), {"packages": {"distributions": []}},
                               ["torch.import-failed"], [command], False)
    finally:
        redact.reset()
    text = (snap.path / "snapshot.json").read_text()
    assert "p@ss" not in text and "w0rd" not in text and "3f9a8b7c6d5e4f" not in text
    assert "https://<redacted>@corp.example/simple" in text
    assert [_mode(p) for p in (state, state / "snapshots", snap.path, snap.wheels)] == [0o700] * 4
    assert _mode(snap.path / "snapshot.json") == 0o600
