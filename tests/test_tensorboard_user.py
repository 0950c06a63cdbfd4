"""The user's TensorBoard beyond the install: third-party plugins that break its
start-up, and how the server is reached (SSH, containers, JupyterHub, proxies, the
`.js` MIME type). Each produced for real: a broken plugin wheel installed into a
layered venv, environment markers set in the probe's environment, a .pth that breaks
`mimetypes`."""

from __future__ import annotations

import subprocess

import pytest

from conftest import by_id, check_json, layered_venv, make_wheel


@pytest.fixture(scope="module")
def broken_plugin_env(stack_env, tmp_path_factory):
    """The stack, plus a real wheel registering a `tensorboard_plugins` entry point whose module
    imports something that is not there (as a profiler plugin built for another TensorBoard)."""
    root = tmp_path_factory.mktemp("plugin")
    info = "tb_broken_profiler-0.3.dist-info"
    wheel = make_wheel(root / "wheels", "tb-broken-profiler", "0.3", extra_files={
        "tb_broken_profiler/plugin.py": "from tensorboard.plugins.no_such_base import ProfilerBase\n",
        f"{info}/entry_points.txt": "[tensorboard_plugins]\nprofile_v9 = tb_broken_profiler.plugin:ProfilerLoader\n"})
    env = layered_venv(root, stack_env)
    subprocess.run([str(stack_env.python), "-m", "pip", "--python", str(env.python), "install", "-q", "--no-index",
                    "--no-deps", "--disable-pip-version-check", str(wheel)], check=True, capture_output=True, timeout=300)
    return env


def test_broken_plugin_is_named_with_its_package(broken_plugin_env):
    # The failure is real: TensorBoard's own plugin loading stops on it.
    real = subprocess.run([str(broken_plugin_env.python), "-c",
                           "from tensorboard import default; default.get_dynamic_plugins()"],
                          capture_output=True, text=True, timeout=120)
    assert real.returncode != 0 and "no_such_base" in real.stderr
    report, proc = check_json("--python", str(broken_plugin_env.python), "--only", "tensorboard")
    (found,) = by_id(report, "tensorboard.plugin-failed")
    assert found["status"] == "error" and proc.returncode == 1
    assert "profile_v9" in found["title"] and "tb-broken-profiler 0.3" in found["title"]
    assert "no_such_base" in found["title"]
    assert found["fixes"][0]["command"].endswith("uninstall -y tb-broken-profiler")
