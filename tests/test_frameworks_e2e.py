"""End-to-end: the real CLI against real broken framework environments, built by
pip under constraints.txt, mostly layered on the cached torch + tensorboardX +
TensorBoard stack (`stack_env`); and the fixes it prints, pasted."""

from __future__ import annotations

import json
import os
import shlex
import subprocess

import pytest

from conftest import (STACK, by_id, cached_venv, check_json, clean_env, ids, layered_venv, make_venv, pip_install,
                      tbdoctor)

POSIX = os.name != "nt"


def problems(report: dict) -> set[str]:
    return {c["id"] for c in report["checks"] if c["status"] in ("error", "warning")}


def paste(finding: dict) -> None:
    """Run every pip fix of ``finding`` as a user would paste it into a shell."""
    for fix in finding["fixes"]:
        assert fix["kind"] in ("pip-install", "pip-uninstall"), fix
        subprocess.run(shlex.split(fix["command"]), check=True, capture_output=True, text=True, timeout=900)


def test_healthy_stack_has_no_error(stack_env):
    report, proc = check_json("--python", str(stack_env.python))
    assert proc.returncode == 0, report["checks"]
    assert report["summary"]["error"] == 0
    torch = by_id(report, "torch.version")[0]
    assert torch["status"] == "ok" and torch["title"] == "torch 2.13.0+cpu (CPU build)"
    assert by_id(report, "tensorboardx.version")[0]["status"] == "ok"
    assert by_id(report, "tensorboard.version")[0]["status"] == "ok"
    assert report["facts"]["torch"]["cuda"] is None and report["facts"]["torch"]["utils_tensorboard_ok"] is True
    assert report["facts"]["tensorboardx"]["writer_ok"] is True
    assert report["facts"]["tensorboard"]["data_server"]["ok"] is True
    # TensorBoard is probed in torch's process (they share numpy, protobuf and TensorBoard's modules).
    assert {"torch", "tensorflow", "jax", "numpy"} <= set(report["facts"]["probes"])


def test_tensorboard_next_to_tb_nightly(stack_env, tmp_path):
    env = layered_venv(tmp_path, stack_env)
    pip_install(env, "--no-deps", "tb-nightly==2.21.0a20251023")
    report, proc = check_json("--python", str(env.python))
    assert proc.returncode == 1
    [dup] = by_id(report, "tensorboard.duplicate-install")
    assert dup["status"] == "error" and "tensorboard and tb-nightly" in dup["title"]
    assert [f["kind"] for f in dup["fixes"]] == ["pip-uninstall", "pip-install"]
    assert dup["fixes"][0]["command"].endswith("-m pip uninstall -y tensorboard tb-nightly")
    assert dup["fixes"][1]["command"].endswith("-m pip install tensorboard==2.21.0")
    paste(dup)  # pip leaves the base environment's tensorboard alone: it is outside this venv
    after, _ = check_json("--python", str(env.python))
    assert "tensorboard.duplicate-install" not in ids(after)
    assert by_id(after, "tensorboard.version")[0]["status"] == "ok"


def test_protobuf_that_violates_tensorboards_requirement(stack_env, tmp_path):
    env = layered_venv(tmp_path, stack_env)
    pip_install(env, "--no-deps", "protobuf==5.29.6")
    report, proc = check_json("--python", str(env.python))
    assert proc.returncode == 1
    assert any("protobuf 5.29.6" in c["title"] for c in by_id(report, "pip.version-conflict"))
    [broken] = by_id(report, "tensorboard.import-failed")
    assert "gencode 6.31.1 runtime 5.29.6" in broken["title"]
    assert "older than its generated code needs" in broken["detail"]
    assert "Traceback" not in broken["title"] + broken["detail"] and "Traceback" in broken["verbose_detail"]
    paste(broken)
    after, _ = check_json("--python", str(env.python))
    assert not {"tensorboard.import-failed", "pip.version-conflict"} & ids(after)


def test_tensorboardx_missing_and_the_pasted_fix(tmp_path):
    env = make_venv(tmp_path, with_pip=True)
    report, proc = check_json("--python", str(env.python))
    assert proc.returncode == 1
    [missing] = by_id(report, "tensorboardx.missing")
    assert missing["status"] == "error"
    assert by_id(report, "tensorboard.missing")[0]["status"] == "warning"
    assert by_id(report, "torch.version")[0]["status"] == "info"  # not installed: not an error
    paste(missing)
    after, _ = check_json("--python", str(env.python))
    assert "tensorboardx.missing" not in ids(after)
    assert by_id(after, "tensorboardx.version")[0]["status"] == "ok"


def test_numpy_abi_break_and_a_segfaulting_import(stack_env, tmp_path):
    env = layered_venv(tmp_path, stack_env)
    pip_install(env, "--no-deps", "Bottleneck==1.3.7")  # a real wheel compiled against NumPy 1.x
    env.add_dist("crashy", "1.0", requires=["numpy"],
                 module_source="import ctypes\nctypes.string_at(0)  # SIGSEGV on import\n")
    report, proc = check_json("--python", str(env.python))
    assert proc.returncode == 1
    [abi] = by_id(report, "numpy.abi-mismatch")
    assert abi["title"].startswith("Bottleneck 1.3.7 was compiled for NumPy 1.x and cannot run with NumPy 2.4.6")
    [crash] = by_id(report, "numpy.import-failed")
    assert "crashy 1.0" in crash["title"] and ("signal 11" in crash["title"] or not POSIX)
    # the run completed: every other probe delivered
    assert all(meta["status"] == "ok" for meta in report["facts"]["probes"].values())
    assert by_id(report, "torch.version")[0]["status"] == "ok"
    paste(abi)
    after, _ = check_json("--python", str(env.python))
    assert "numpy.abi-mismatch" not in ids(after)
    assert "crashy 1.0" in by_id(after, "numpy.import-failed")[0]["title"]


def test_numpy_sweep_reads_extensions_and_one_child_survives_a_hang_and_a_crash(tmp_path_factory, tmp_path):
    """Issue 14: the sweep imported every NumPy dependent in a process of its own. Now pandas 1.5.3
    under NumPy 2 is answered from its extension modules (built with NumPy 1.x headers), and the
    pure-Python dependents are imported one after another: a hang costs only itself, a crash too."""
    base = cached_venv(tmp_path_factory, "pandas153-numpy2", "pandas==1.5.3", "numpy==2.2.6")
    env = layered_venv(tmp_path, base)
    env.add_dist("a-hangs", "1.0", requires=["numpy"], module_source="import time\ntime.sleep(600)\n")
    env.add_dist("crashy", "1.0", requires=["numpy"], module_source="import ctypes\nctypes.string_at(0)\n")
    env.add_dist("fine", "1.0", requires=["numpy"], module_source="import numpy\n")
    proc = tbdoctor("check", "--json", "--only", "numpy", "--timeout", "20", "--python", str(env.python))
    report = json.loads(proc.stdout)
    swept = {d["name"]: d for d in report["facts"]["numpy"]["dependents"]}
    assert swept["pandas"]["method"] == "symbols" and swept["pandas"]["reason"] == "numpy-abi"
    assert "compiled with the NumPy 1.x C-API headers" in swept["pandas"]["line"]
    [abi] = [c for c in by_id(report, "numpy.abi-mismatch") if "pandas" in c["title"]]
    assert abi["fixes"][0]["packages"] == ["pandas<2.3,>=2.2.2"]
    assert swept["a-hangs"]["reason"] == "timeout" and swept["a-hangs"]["method"] == "import"
    assert swept["crashy"]["reason"] == "crashed" and (swept["crashy"]["signal"] == 11 or not POSIX)
    assert swept["fine"]["ok"] is True and swept["fine"]["method"] == "import"
    assert report["facts"]["probes"]["numpy"]["status"] == "ok"


def test_tensorboard_2_20_with_setuptools_82(stack_env, tmp_path):
    env = layered_venv(tmp_path, stack_env)
    pip_install(env, "--no-deps", "tensorboard==2.20.0")  # the base has setuptools >= 82
    report, proc = check_json("--python", str(env.python))
    assert proc.returncode == 1
    [f] = by_id(report, "tensorboard.pkg-resources-missing")
    assert f["status"] == "error" and "TensorBoard 2.20.0" in f["title"]
    assert report["facts"]["tensorboard"]["cli_error"]["reason"] == "pkg-resources-missing"
    assert "tensorboard.import-failed" not in ids(report)  # the pair finding reports it
    paste(f)
    after, _ = check_json("--python", str(env.python))
    assert "tensorboard.pkg-resources-missing" not in ids(after)
    assert after["facts"]["tensorboard"]["cli_error"] is None


@pytest.fixture(scope="session")
def tf_stack(tmp_path_factory):
    """The one real TensorFlow environment of the suite (tensorflow-cpu + the stack), cached."""
    return cached_venv(tmp_path_factory, "tfstack", *STACK, "tensorflow-cpu")


def test_healthy_stack_with_tensorflow_cpu(tf_stack):
    report, proc = check_json("--python", str(tf_stack.python))
    assert report["summary"]["error"] == 0, [c for c in report["checks"] if c["status"] == "error"]
    assert proc.returncode == 0
    assert by_id(report, "tensorflow.version")[0]["title"].startswith("TensorFlow 2.")
    assert report["facts"]["tensorflow"]["build"]["is_cuda_build"] is False


def test_tensorflow_next_to_tensorflow_cpu(tf_stack, tmp_path):
    env = layered_venv(tmp_path, tf_stack)
    version = tf_stack_version(tf_stack)
    env.add_dist("tensorflow", version)  # metadata only: the real package is tensorflow-cpu's
    report, _ = check_json("--python", str(env.python))
    [dup] = by_id(report, "tensorflow.duplicate-install")
    assert "tensorflow and tensorflow-cpu" in dup["title"]
    assert dup["fixes"][0]["command"].endswith("-m pip uninstall -y tensorflow tensorflow-cpu")
    assert dup["fixes"][1]["command"].endswith(f"-m pip install tensorflow=={version}")


def tf_stack_version(env) -> str:
    return subprocess.run([str(env.python), "-c", "from importlib.metadata import version; print(version('tensorflow-cpu'))"],
                          capture_output=True, text=True, check=True).stdout.strip()


@pytest.mark.skipif(not POSIX, reason="the fake nvidia-smi is a shell script")
def test_cpu_torch_on_a_gpu_machine_gets_the_cuda_variant_the_driver_runs(stack_env, tmp_path):
    from conftest import fake_gpu_env
    report, proc = check_json("--python", str(stack_env.python), env=fake_gpu_env(tmp_path, "a100-535", nvml="a100-535"))
    assert proc.returncode == 1
    [f] = by_id(report, "torch.cpu-build-on-gpu")
    assert f["status"] == "error" and "NVIDIA A100" in f["title"] and "driver 535" in f["detail"].lower()
    assert f["fixes"][0]["command"].endswith("-m pip uninstall -y torch")
    assert f["fixes"][1]["command"].endswith("-m pip install --index-url https://download.pytorch.org/whl/cu126 "
                                             "torch==2.13.0")
    old, _ = check_json("--python", str(stack_env.python), env=fake_gpu_env(tmp_path, "gtx1080-470", nvml="gtx1080-470"))
    [f] = by_id(old, "torch.cpu-build-on-gpu")
    assert f["fixes"] == [] and "upgrade the driver" in f["hint"]


@pytest.mark.skipif(not POSIX, reason="a shebang script stands for the other environment's tensorboard")
def test_tensorboard_runtime_environment(stack_env, tmp_path):
    """A stale notebook record, port 6006 taken, and another environment's `tensorboard` first on PATH."""
    import json
    import socket
    import sys

    tmpdir = tmp_path / "tmp"
    (tmpdir / ".tensorboard-info").mkdir(parents=True)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # a pid that no longer runs
    record = tmpdir / ".tensorboard-info" / f"pid-{dead.pid}.info"
    record.write_text(json.dumps({"pid": dead.pid, "port": 6006, "logdir": "runs", "version": "2.21.0"}))
    other = tmp_path / "other-env" / "bin"
    other.mkdir(parents=True)
    (other / "tensorboard").write_text("#!/opt/other/bin/python\n")
    (other / "tensorboard").chmod(0o755)
    holder = socket.socket()
    try:
        holder.bind(("127.0.0.1", 6006))
        holder.listen(1)
    except OSError:
        pass  # something on this machine already holds it: the check must say so all the same
    try:
        env = clean_env(TMPDIR=str(tmpdir), PATH=f"{other}{os.pathsep}{os.environ.get('PATH', '')}")
        report, _ = check_json("--python", str(stack_env.python), "--only", "tensorboard", env=env)
    finally:
        holder.close()
    [stale] = by_id(report, "tensorboard.stale-instances")
    assert f"pid {dead.pid}" in stale["detail"] and stale["fixes"][0]["command"] == f"rm -r {record}"
    assert by_id(report, "tensorboard.port-in-use")[0]["title"].startswith("Port 6006 is in use")
    [elsewhere] = by_id(report, "tensorboard.script-elsewhere")
    assert "/opt/other/bin/python" in elsewhere["title"]
