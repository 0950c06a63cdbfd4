"""The probes name the real cause: the user's own environment, crash and hang
attribution, installed-file integrity and broken .pth files (real venvs, real CLI)."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest

from conftest import Venv, by_id, check_json, clean_env, layered_venv


def test_facts_hold_the_users_environment_not_tbdoctors_probe_settings(env):
    user = clean_env(TF_CLI_CONFIG_FILE="/etc/terraformrc", TF_VAR_region="eu", TF_FORCE_GPU_ALLOW_GROWTH="true",
                     PYTHONWARNINGS="default")
    for key in ("TF_CPP_MIN_LOG_LEVEL", "TF_ENABLE_ONEDNN_OPTS", "PYTHONIOENCODING", "PYTHONDONTWRITEBYTECODE"):
        user.pop(key, None)
    report, _ = check_json("--python", str(env.python), "--only", "python", env=user)
    environ = report["facts"]["python"]["environ"]
    assert environ["PYTHONWARNINGS"] == "default"  # the user's value, not tbdoctor's "ignore"
    assert environ["TF_FORCE_GPU_ALLOW_GROWTH"] == "true"
    for key in ("TF_CPP_MIN_LOG_LEVEL", "TF_ENABLE_ONEDNN_OPTS", "PYTHONIOENCODING", "PYTHONDONTWRITEBYTECODE",
                "TF_CLI_CONFIG_FILE", "TF_VAR_region"):  # tbdoctor's own settings; Terraform's variables
        assert key not in environ, key


@pytest.fixture
def over_stack(stack_env, tmp_path) -> Venv:
    """A venv layered over the cached torch + tensorboardX + TensorBoard stack (left untouched)."""
    return layered_venv(tmp_path, stack_env)


def _shadow(env: Venv, module: str, source: str) -> Path:
    """A package folder in ``env`` that is imported instead of the stack's ``module``."""
    (env.site / module).mkdir()
    init = env.site / module / "__init__.py"
    init.write_text(source)
    return init


def test_a_crashing_tensorboardx_is_named_and_torch_keeps_its_facts(over_stack):
    init = _shadow(over_stack, "tensorboardX", "import ctypes\nctypes.string_at(0)  # a NULL dereference\n")
    report, proc = check_json("--python", str(over_stack.python), "--only", "torch", "tensorboardx")
    assert proc.returncode == 1
    [finding] = by_id(report, "tensorboardx.import-failed")
    assert "crashed (SIGSEGV" in finding["title"] and "during import tensorboardX" in finding["title"]
    assert f"{init}:2 (<module>)" in finding["title"]  # the file and line on top of the package's stack
    assert "crashed the interpreter" in finding["detail"]
    assert not by_id(report, "probe.torch")  # not blamed on torch, whose facts are complete
    torch = report["facts"]["torch"]
    assert torch["import_ok"] and torch["version"].startswith("2.13.0")
    assert by_id(report, "torch.version")[0]["status"] == "ok"
    assert report["facts"]["probes"]["torch"]["charged"] == ["tensorboardx"]


def test_a_hanging_import_is_reported_with_its_line_within_30_s(over_stack):
    init = _shadow(over_stack, "tensorboardX", "import threading\n_lock = threading.Lock()\n_lock.acquire()\n"
                                               "_lock.acquire()  # blocks forever\n")
    start = time.monotonic()
    report, _ = check_json("--python", str(over_stack.python), "--only", "torch", "tensorboardx")
    took = time.monotonic() - start
    [finding] = by_id(report, "tensorboardx.import-failed")
    assert f"import tensorboardX hangs in {init}:4 (<module>)" in finding["title"], finding["title"]
    assert took < 30, took  # the default --timeout is 90 s
    assert report["facts"]["torch"]["import_ok"]
    print(f"hang reported after {took:.1f} s")


def test_a_slow_but_busy_import_is_not_a_hang(env):
    # 5 s of pure CPU work, with a hang window of 2 s: it makes progress all along.
    (env.site / "busy.py").write_text("import time\nend = time.time() + 5\nwhile time.time() < end:\n    pass\n")
    (env.site / "busy.pth").write_text("import busy\n")
    report, _ = check_json("--python", str(env.python), "--only", "python", env=clean_env(TBDOCTOR_HANG_WINDOW="2"))
    assert report["facts"]["probes"]["python"]["status"] == "ok", report["facts"]["probes"]["python"]
    assert report["facts"]["python"]["version"]


def test_a_probe_that_hangs_is_stopped_after_the_hang_window_not_the_timeout(env):
    (env.site / "stuck.py").write_text("import os, time\nif os.environ.get('TBD_STUCK'):\n    time.sleep(600)\n")
    (env.site / "stuck.pth").write_text("import stuck\n")
    start = time.monotonic()
    report, _ = check_json("--python", str(env.python), "--only", "python", "--timeout", "60",
                           env=clean_env(TBD_STUCK="1", TBDOCTOR_HANG_WINDOW="2"))
    assert time.monotonic() - start < 20
    [finding] = by_id(report, "probe.python")
    assert "hung (no progress for 2 s" in finding["title"], finding["title"]


def test_a_package_with_a_file_missing_is_reported_incomplete_with_a_reinstall(over_stack, stack_env):
    # A copy of the stack's tensorboard in the layered venv (imported first), less tensorboard/lazy.py.
    shutil.copytree(stack_env.site / "tensorboard", over_stack.site / "tensorboard")
    [info] = stack_env.site.glob("tensorboard-*.dist-info")
    shutil.copytree(info, over_stack.site / info.name)
    shutil.copy2(stack_env.path / "bin" / "tensorboard", over_stack.path / "bin" / "tensorboard")
    (over_stack.site / "tensorboard" / "lazy.py").unlink()
    version = info.name[len("tensorboard-"):-len(".dist-info")]
    report, proc = check_json("--python", str(over_stack.python), "--only", "tensorboard")
    assert proc.returncode == 1
    [finding] = by_id(report, "tensorboard.incomplete-install")
    assert finding["title"] == "tensorboard is incomplete: tensorboard/lazy.py listed in RECORD is missing"
    assert "circular import" in finding["detail"]  # Python's misleading message, explained
    assert finding["fixes"][0]["packages"] == [f"tensorboard=={version}"]
    assert "--force-reinstall --no-deps" in finding["fixes"][0]["command"]
    assert not by_id(report, "tensorboard.import-failed")  # one cause, one finding


def test_a_modified_file_is_found_by_its_hash_with_v(over_stack, stack_env):
    shutil.copytree(stack_env.site / "tensorboard", over_stack.site / "tensorboard")
    [info] = stack_env.site.glob("tensorboard-*.dist-info")
    shutil.copytree(info, over_stack.site / info.name)
    shutil.copy2(stack_env.path / "bin" / "tensorboard", over_stack.path / "bin" / "tensorboard")
    with open(over_stack.site / "tensorboard" / "errors.py", "a") as fh:
        fh.write("# edited\n")
    report, _ = check_json("--python", str(over_stack.python), "--only", "tensorboard")
    assert not by_id(report, "tensorboard.files-modified")  # existence only, without -v
    report, _ = check_json("--python", str(over_stack.python), "--only", "tensorboard", "-v")
    [finding] = by_id(report, "tensorboard.files-modified")
    assert "tensorboard/errors.py" in finding["title"]


# setuptools' distutils-precedence.pth, as setuptools writes it.
_PRECEDENCE = ("import os; var = 'SETUPTOOLS_USE_DISTUTILS'; enabled = os.environ.get(var, 'local') == 'local'; "
               "enabled and __import__('_distutils_hack').add_shim(); \n")


def test_a_pth_file_whose_module_is_gone_is_named_with_its_line_and_fix(env):
    pth = env.site / "distutils-precedence.pth"
    pth.write_text(_PRECEDENCE)  # and no _distutils_hack: setuptools was half removed
    report, _ = check_json("--python", str(env.python), "--only", "python")
    [finding] = by_id(report, "python.broken-pth")
    assert finding["title"] == f"{pth} line 1 raises at every start-up: ModuleNotFoundError: No module named '_distutils_hack'"
    assert finding["fixes"][0]["command"] == f"rm {pth}"  # owned by nothing: remove it

    info = env.add_dist("setuptools", "80.9.0")
    with open(info / "RECORD", "a") as fh:
        fh.write("distutils-precedence.pth,sha256=x,151\n")
    report, _ = check_json("--python", str(env.python), "--only", "python")
    [finding] = by_id(report, "python.broken-pth")
    assert "setuptools 80.9.0" in finding["hint"]
    assert finding["fixes"][0]["packages"] == ["setuptools==80.9.0"]
    assert "--force-reinstall" in finding["fixes"][0]["command"]


def test_a_namespace_pth_that_reads_its_callers_sitedir_is_not_broken(env):
    """Observed: protobuf 3.20's -nspkg.pth (it reads site.addpackage's `sitedir`) was called broken
    ("KeyError: 'sitedir'"), and fix planned an impossible reinstall of protobuf."""
    (env.site / "example-1.0-nspkg.pth").write_text(
        "import sys, types, os;has_mfs = sys.version_info > (3, 5);"
        "p = os.path.join(sys._getframe(1).f_locals['sitedir'], *('example',));"
        "m = not has_mfs and sys.modules.setdefault('example', types.ModuleType('example'))\n")
    proc = subprocess.run([str(env.python), "-c", "pass"], capture_output=True, text=True, timeout=60)
    assert proc.stderr == ""  # Python itself is happy with it
    report, _ = check_json("--python", str(env.python), "--only", "python")
    assert not by_id(report, "python.broken-pth")
