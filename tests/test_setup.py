"""`tbdoctor setup`: profiles, refusals, and one real CPU environment built end to end."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from conftest import REPO, check_json, clean_env, fake_gpu_env, on_a_terminal, tbdoctor
from tbdoctor import compat


def _no_uv(env: dict) -> dict:
    """PATH without uv: these tests build with `python -m venv` and pip (and pip's configuration)."""
    env["PATH"] = os.pathsep.join(d for d in env["PATH"].split(os.pathsep)
                                  if not os.path.exists(os.path.join(d, "uv")))
    return env


def _no_pip_config(env: dict) -> dict:
    """No pip configuration at all: the profiles' own index hints apply."""
    for name in ("PIP_FIND_LINKS", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_NO_INDEX", "PIP_CONSTRAINT"):
        env.pop(name, None)
    env["PIP_CONFIG_FILE"] = os.devnull
    return _no_uv(env)


def _machine(tmp_path, name, **recordings) -> dict:
    (tmp_path / name).mkdir()
    return _no_pip_config(fake_gpu_env(tmp_path / name, **recordings))


def test_list_shows_what_each_profile_installs_on_this_machine(tmp_path):
    gpu = tbdoctor("setup", "--list", env=_machine(tmp_path, "a100", smi="a100-535", nvml="a100-535"))
    assert gpu.returncode == 0, gpu.stderr
    assert "this machine: NVIDIA driver 535.104.05, compute capability 8.0; auto picks cuda" in gpu.stdout
    variant = compat.best_torch_variant("535.104.05", compat.latest_torch(), "8.0")
    assert variant.startswith("cu12")  # CUDA 13 needs driver 580+
    assert f"pip install --index-url https://download.pytorch.org/whl/{variant} 'torch>=2.3'" in gpu.stdout
    assert """'tensorflow[and-cuda]>=2.16; sys_platform == "linux"'""" in gpu.stdout

    old = tbdoctor("setup", "--list", env=_machine(tmp_path, "gtx1080", smi="gtx1080-470", nvml="gtx1080-470"))
    assert "cuda: " in old.stdout and "not for this machine: no CUDA build of torch" in old.stdout

    cpu = tbdoctor("setup", "--list", env=_machine(tmp_path, "cpu"))
    assert "this machine: no NVIDIA GPU; auto picks cpu" in cpu.stdout
    assert "pip install --index-url https://download.pytorch.org/whl/cpu 'torch>=2.3'" in cpu.stdout
    assert "not for this machine: profile cuda is for nvidia machines" in cpu.stdout

    mine = tbdoctor("setup", "--list", "--find-links", str(tmp_path), env=_machine(tmp_path, "cpu-mine"))
    assert "the --index-url/--find-links/--no-index you gave used instead of the profile's index" in mine.stdout


def test_refusals_change_nothing(tmp_path):
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "notes.txt").write_text("mine")
    proc = tbdoctor("setup", str(taken), "--profile", "cpu", "--yes", env=fake_gpu_env(tmp_path))
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"tbdoctor: error: {taken} is not empty; choose another directory, or pass --force")
    assert [p.name for p in taken.iterdir()] == ["notes.txt"]

    cuda = tbdoctor("setup", str(tmp_path / "new"), "--profile", "cuda", "--yes", env=fake_gpu_env(tmp_path))
    assert cuda.returncode == 2 and "profile cuda is for nvidia machines; this one has no NVIDIA GPU" in cuda.stderr
    unknown = tbdoctor("setup", str(tmp_path / "new"), "--profile", "gpu-please", "--yes", env=fake_gpu_env(tmp_path))
    assert unknown.returncode == 2 and "--profile gpu-please: no such profile" in unknown.stderr
    pending = tbdoctor("setup", str(tmp_path / "new"), "--profile", "cpu", env=fake_gpu_env(tmp_path))
    assert pending.returncode == 1 and "Pending: run again with --yes" in pending.stdout
    assert not (tmp_path / "new").exists()


@pytest.mark.skipif(os.name == "nt", reason="pseudo-terminals are POSIX")
def test_on_a_terminal_setup_asks_profile_directory_python_then_confirms(tmp_path):
    chosen = tmp_path / "chosen"
    answers = f"cpu\r{chosen}\r\rn\r"  # profile, directory, Python (default), then "no"
    code, screen = on_a_terminal(["setup"], answers, _no_uv(fake_gpu_env(tmp_path)))
    for prompt in ("Profile [cpu/cuda/full/tensorflow] (cpu)", "Directory (.venv)", "Python (", "Build this environment?"):
        assert prompt in screen
    assert f"directory: {chosen}" in screen
    assert code == 1 and not chosen.exists()


def test_setup_cpu_builds_a_working_environment_and_force_keeps_other_files(tmp_path):
    """torch 2.13.0 comes through pip's configured sources (this machine's local wheel),
    pinned by constraints.txt; tensorboardX and TensorBoard from the registry."""
    target = tmp_path / "env"
    (target / "bin").mkdir(parents=True)
    (target / "pyvenv.cfg").write_text("home = /nowhere\n")  # an old, broken venv ...
    (target / "bin" / "stale-tool").write_text("#!/bin/sh\n")
    (target / "notes.txt").write_text("mine")  # ... next to the user's own file
    proc = tbdoctor("setup", str(target), "--profile", "cpu", "--yes", "--force",
                    "--constraint", str(REPO / "constraints.txt"), env=_no_uv(fake_gpu_env(tmp_path)), timeout=1500)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "(rebuilt: removes bin, pyvenv.cfg)" in proc.stdout
    assert (target / "notes.txt").read_text() == "mine" and not (target / "bin" / "stale-tool").exists()
    assert f"Activate it with:  source {target}/bin/activate" in proc.stdout
    assert "Verified: the job trained, TensorBoard draws the loss curve in a browser" in proc.stdout
    lock = (target / "tbdoctor-lock.txt").read_text()
    assert "torch==2.13.0" in lock and "tensorboardX==" in lock and "tensorboard==" in lock
    report, check = check_json("--python", str(target), env=fake_gpu_env(tmp_path))
    assert check.returncode == 0 and report["summary"]["error"] == 0, json.dumps(report["checks"], indent=1)
    python = target / "bin" / "python"
    run = subprocess.run([str(python), "-c", "import torch, tensorboardX; w = tensorboardX.SummaryWriter('"
                          + str(tmp_path / "logs") + "'); w.add_scalar('x', float(torch.ones(1)), 0); w.close()"],
                         capture_output=True, text=True, timeout=300, env=clean_env())
    assert run.returncode == 0, run.stderr
    assert list((tmp_path / "logs").glob("events.out.tfevents.*"))


def _cuda_wheelhouse(tmp_path):
    """A wheelhouse where `torch>=2.3` resolves to a CUDA build: tiny stand-in wheels (nothing real is installed)."""
    from conftest import make_wheel
    wheels = tmp_path / "cuda-wheels"
    make_wheel(wheels, "torch", "2.99.0+cu130", requires=["nvidia-cublas-cu13==13.0.0"])
    make_wheel(wheels, "nvidia-cublas-cu13", "13.0.0")
    return wheels


def test_cpu_profile_refuses_a_cuda_torch_that_pip_configuration_resolves(tmp_path):
    """Observation 7: with find-links in pip's configuration, `setup --profile cpu` ran a plain
    `pip install 'torch>=2.3'` that resolved to a CUDA build."""
    wheels = _cuda_wheelhouse(tmp_path)
    env = _no_pip_config(fake_gpu_env(tmp_path))
    env.update(PIP_NO_INDEX="1", PIP_FIND_LINKS=str(wheels))
    target = tmp_path / "env"
    proc = tbdoctor("setup", str(target), "--profile", "cpu", "--yes", env=env, timeout=600)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Refused: this is a CPU profile" in proc.stdout and "torch 2.99.0+cu130" in proc.stdout
    assert "nvidia-cublas-cu13 13.0.0" in proc.stdout and "download.pytorch.org/whl/cpu" in proc.stdout
    assert not list(target.glob("lib/python*/site-packages/torch*"))


def test_with_uv_pip_configuration_is_passed_on_and_said(tmp_path):
    """With uv on PATH, pip's find-links reach uv (it does not read pip's configuration) and are checked too."""
    import shutil
    import sys
    uv = shutil.which("uv") or os.path.join(os.path.dirname(sys.executable), "uv")
    if not os.path.exists(uv):
        pytest.skip("uv is not installed")
    wheels = _cuda_wheelhouse(tmp_path)
    env = _no_pip_config(fake_gpu_env(tmp_path))
    env.update(PIP_NO_INDEX="1", PIP_FIND_LINKS=str(wheels), PATH=os.path.dirname(uv) + os.pathsep + env["PATH"])
    proc = tbdoctor("setup", str(tmp_path / "env"), "--profile", "cpu", "--yes", env=env, timeout=600)
    assert "passed on to uv (uv does not read it: --find-links " + str(wheels) in proc.stdout, proc.stdout
    assert proc.returncode == 1 and "Refused: this is a CPU profile" in proc.stdout

