"""The user's TensorBoard beyond the install: third-party plugins that break its
start-up, and how the server is reached (SSH, containers, JupyterHub, proxies, the
`.js` MIME type). Each produced for real: a broken plugin wheel installed into a
layered venv, environment markers set in the probe's environment, a .pth that breaks
`mimetypes`."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys

import pytest

from conftest import by_id, check_json, clean_env, layered_venv, make_wheel


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


def test_ssh_container_and_jupyterhub_markers(stack_env):
    markers = {"SSH_CONNECTION": "10.1.2.3 50022 10.9.8.7 22", "container": "podman",
               "JUPYTERHUB_SERVICE_PREFIX": "/user/ann/"}
    report, _ = check_json("--python", str(stack_env.python), "--only", "tensorboard", env=clean_env(**markers))
    (ssh,) = by_id(report, "tensorboard.ssh-session")
    host = socket.gethostname()
    assert ssh["status"] == "info" and f"ssh -L 6006:127.0.0.1:6006 <user>@{host}`" in ssh["detail"]
    assert "10.9.8.7" not in json.dumps(report)  # the session's addresses stay out of reports
    assert "--bind_all" in ssh["detail"] and "no authentication" in ssh["detail"]
    (box,) = by_id(report, "tensorboard.in-container")
    assert box["status"] == "info" and "$container" in box["title"]
    (hub,) = by_id(report, "tensorboard.proxy-url")
    assert hub["status"] == "warning"
    assert hub["fixes"][-1]["command"] == "export TENSORBOARD_PROXY_URL=/user/ann/proxy/%PORT%/"
    assert any(f["command"].endswith("install jupyter-server-proxy") for f in hub["fixes"])
    report, _ = check_json("--python", str(stack_env.python), "--only", "tensorboard", env=clean_env(
        SSH_CONNECTION="", JUPYTERHUB_SERVICE_PREFIX="/user/ann/", TENSORBOARD_PROXY_URL="/user/ann/proxy/%PORT%/"))
    assert not by_id(report, "tensorboard.proxy-url") and not by_id(report, "tensorboard.ssh-session")


def test_js_served_as_text_plain_is_named(stack_env, tmp_path):
    env = layered_venv(tmp_path, stack_env)
    # As a Windows registry entry or a stray mime.types does: .js becomes text/plain for every Python program.
    (env.site / "zz_mime.pth").write_text("import mimetypes; mimetypes.add_type('text/plain', '.js')\n")
    report, proc = check_json("--python", str(env.python), "--only", "tensorboard")
    (found,) = by_id(report, "tensorboard.js-mime-type")
    assert found["status"] == "error" and "text/plain" in found["title"] and proc.returncode == 1
    healthy, _ = check_json("--python", str(stack_env.python), "--only", "tensorboard")
    assert not by_id(healthy, "tensorboard.js-mime-type")


def test_port_6006_taken_names_the_process(stack_env):
    holder = subprocess.Popen([sys.executable, "-c", "import socket, sys, time\n"
                               "s = socket.socket(); s.bind(('127.0.0.1', 6006)); s.listen()\n"
                               "print('bound', flush=True); time.sleep(120)"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        bound = holder.stdout.readline().strip() == "bound"
        report, _ = check_json("--python", str(stack_env.python), "--only", "tensorboard")
        (found,) = by_id(report, "tensorboard.port-in-use")
        # Another test may hold 6006 already: then that process must be named instead.
        assert (f"pid {holder.pid} (" in found["title"] and "time.sleep" in found["title"]) if bound \
            else "by pid " in found["title"] or "TensorBoard pid" in found["title"], found
    finally:
        holder.kill()
        holder.wait()


_NO_IPV6 = '''import errno, socket
_socket = socket.socket
class _NoIPv6(_socket):
    """A kernel booted with ipv6.disable=1: IPv6 sockets cannot be made."""
    def __init__(self, family=-1, *args, **kwargs):
        if family == socket.AF_INET6:
            raise OSError(errno.EAFNOSUPPORT, "Address family not supported by protocol")
        _socket.__init__(self, family, *args, **kwargs)
socket.socket = _NoIPv6
'''


def test_bind_all_without_ipv6_is_named(stack_env, tmp_path):
    env = layered_venv(tmp_path, stack_env)
    (env.site / "tbdoctor_test_noipv6.py").write_text(_NO_IPV6)
    (env.site / "zz_noipv6.pth").write_text("import tbdoctor_test_noipv6\n")
    # TensorBoard itself fails with --bind_all there (it picks "::" from getaddrinfo).
    real = subprocess.run([str(env.python), "-m", "tensorboard.main", "--logdir", str(tmp_path), "--bind_all",
                           "--port", "0", "--load_fast", "false"], capture_output=True, text=True, timeout=120)
    assert real.returncode != 0 and "unsupported address family" in real.stderr, real.stderr[-2000:]
    report, _ = check_json("--python", str(env.python), "--only", "tensorboard")
    (found,) = by_id(report, "tensorboard.bind-all")
    assert found["status"] == "warning" and "::" in found["title"] and "--host 0.0.0.0" in found["hint"]


def test_broken_pillow_breaks_torch_image_summaries(stack_env, tmp_path):
    env = layered_venv(tmp_path, stack_env)
    # Pillow's compiled core gone (as after an interrupted upgrade): a PIL that fails as the real one does.
    real = stack_env.site / "PIL"
    shutil.copytree(real, env.site / "PIL", ignore=shutil.ignore_patterns("_imaging.*", "__pycache__"))
    for info in stack_env.site.glob("pillow-*.dist-info"):
        shutil.copytree(info, env.site / info.name)
    proof = subprocess.run([str(env.python), "-c", "import numpy, tempfile\n"
                            "from torch.utils.tensorboard import SummaryWriter\n"
                            "SummaryWriter(tempfile.mkdtemp()).add_image('x', numpy.zeros((3, 4, 4)))"],
                           capture_output=True, text=True, timeout=300)
    assert proof.returncode != 0 and "_imaging" in proof.stderr, proof.stderr[-1500:]
    report, proc = check_json("--python", str(env.python), "--only", "tensorboard")
    (found,) = by_id(report, "tensorboard.pillow-broken")
    assert "_imaging" in found["title"] and "--force-reinstall" in found["fixes"][0]["command"]
    healthy, _ = check_json("--python", str(stack_env.python), "--only", "tensorboard")
    assert not by_id(healthy, "tensorboard.pillow-broken")
