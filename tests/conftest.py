"""Shared helpers: run the real tbdoctor CLI as a process, build real venvs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
# Run this checkout's tbdoctor without putting it on the target's PYTHONPATH.
# The CLI as the tests run it: NVML answers from a recording when fake_gpu_env names one (tests/nvml_recording.py).
_BOOT = (f"import sys; sys.path.insert(0, {str(REPO)!r}); sys.path.insert(0, {str(Path(__file__).parent)!r}); "
         "import nvml_recording; nvml_recording.install(); from tbdoctor.cli import main; sys.exit(main())")


def clean_env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV", "CONDA_PREFIX", "PYTHONNOUSERSITE")}
    env["TBDOCTOR_NO_CACHE"] = "1"  # each test probes afresh; test_cache.py turns the cache on
    env.update(extra)
    return env


def tbdoctor(*args: str, env: dict | None = None, cwd=None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run the real CLI in a child process and return what it did; every JSON it printed or
    wrote (stdout, --save-facts, --output) is checked against its published schema."""
    proc = subprocess.run([sys.executable, "-c", _BOOT, *args], capture_output=True, text=True,
                          env=env or clean_env(), cwd=cwd, timeout=timeout)
    outputs = [proc.stdout] + [_read_output(args[i + 1], cwd) for i, a in enumerate(args[:-1])
                               if a in ("--save-facts", "--output")]
    for text in outputs:
        if text.lstrip().startswith("{"):
            try:
                data = json.loads(text)
            except ValueError:
                continue
            assert_schema(data)
    return proc


def _read_output(path: str, cwd) -> str:
    try:
        return (Path(cwd or ".") / path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def assert_schema(data) -> dict:
    """``data`` (a tbdoctor JSON object) matches the published schema its "schema" key names."""
    from tbdoctor import schemas
    name = schemas.for_contract(data.get("schema")) if isinstance(data, dict) else None
    if name:
        problem = schemas.problem(name, data)
        assert problem is None, f"{data['schema']} output breaks its schema: {problem}"
    return data


def check_json(*args: str, **kwargs) -> tuple[dict, subprocess.CompletedProcess]:
    """The report of a real `check --json`; every `pip install` it prints that pip's resolver
    verified is proven installable here and now (run with --dry-run in the same environment)."""
    proc = tbdoctor("check", "--json", *args, **kwargs)
    assert proc.returncode in (0, 1), proc.stderr
    report = json.loads(proc.stdout)
    assert_installable(report, kwargs.get("env"))
    return report, proc


def ids(report: dict, status: str | None = None) -> set[str]:
    return {c["id"] for c in report["checks"] if status is None or c["status"] == status}


def by_id(report: dict, check_id: str) -> list[dict]:
    return [c for c in report["checks"] if c["id"] == check_id]


@dataclass
class Venv:
    path: Path
    python: Path
    site: Path

    def add_dist(self, name: str, version: str, requires=(), top_level: str | None = None,
                 module_source: str | None = None, site: Path | None = None) -> Path:
        """Hand-write an installed distribution (dist-info, and a module if given)."""
        site = site or self.site
        info = site / f"{name.replace('-', '_')}-{version}.dist-info"
        info.mkdir(parents=True)
        meta = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
        meta += [f"Requires-Dist: {r}" for r in requires]
        (info / "METADATA").write_text("\n".join(meta) + "\n")
        (info / "INSTALLER").write_text("pip\n")
        records = [f"{info.name}/METADATA,,", f"{info.name}/RECORD,,"]
        if module_source is not None:
            module = top_level or name.replace("-", "_")
            (site / module).mkdir(exist_ok=True)
            (site / module / "__init__.py").write_text(module_source)
            (info / "top_level.txt").write_text(module + "\n")
            records.append(f"{module}/__init__.py,,")
        (info / "RECORD").write_text("\n".join(records) + "\n")
        return info


def make_venv(root: Path, name: str = "env", with_pip: bool = False) -> Venv:
    path = root / name
    venv.EnvBuilder(with_pip=with_pip, symlinks=os.name != "nt").create(path)
    python = path / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                               capture_output=True, text=True, check=True).stdout.strip())
    return Venv(path, python, site)


@pytest.fixture
def env(tmp_path) -> Venv:
    return make_venv(tmp_path)


def pip_install(env: Venv, *requirements: str, timeout: float = 1200) -> None:
    """Install into ``env`` with its own pip, always under constraints.txt (torch pinned)."""
    subprocess.run([str(env.python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                    "-c", str(REPO / "constraints.txt"), *requirements],
                   check=True, capture_output=True, text=True, timeout=timeout)


def cached_venv(factory, name: str, *requirements: str) -> Venv:
    """A venv with ``requirements`` installed, built once per test session.

    With TBDOCTOR_TEST_CACHE set, it is kept in that folder across sessions (for
    development; CI builds afresh). Treat it as read-only: to break it, layer an
    environment on top with ``layered_venv``.
    """
    import hashlib
    key = hashlib.sha256("\n".join([sys.version, *requirements]).encode()).hexdigest()[:12]
    cache = os.environ.get("TBDOCTOR_TEST_CACHE")
    shared = factory.getbasetemp().parent if os.environ.get("PYTEST_XDIST_WORKER") else factory.getbasetemp()
    root = Path(cache) if cache else shared / "venv-cache"  # one cache for all xdist workers (built under a lock)
    path = root / f"{name}-{key}"
    python = path / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    if not (path / ".complete").exists():
        # Built under a lock: test sessions running side by side never see or break a
        # half-built venv (a venv is not relocatable, so it cannot be built aside and renamed).
        import fcntl
        import shutil
        root.mkdir(parents=True, exist_ok=True)
        with open(root / f".{path.name}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not (path / ".complete").exists():
                shutil.rmtree(path, ignore_errors=True)
                built = make_venv(root, path.name, with_pip=True)
                if requirements:
                    pip_install(built, *requirements)
                (path / ".complete").write_text("\n".join(requirements))
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                               capture_output=True, text=True, check=True).stdout.strip())
    return Venv(path, python, site)


def layered_venv(root: Path, base: Venv, name: str = "layered") -> Venv:
    """A new venv that sees ``base``'s packages after its own (a .pth line), so a
    test can break it by installing into it without touching ``base``."""
    env = make_venv(root, name)
    (env.site / "_tbdoctor_test_base.pth").write_text(str(base.site) + "\n")
    return env


# The torch + tensorboardX + TensorBoard stack the product is about.
STACK = ("torch==2.13.0", "tensorboardX", "tensorboard")


@pytest.fixture(scope="session")
def stack_env(tmp_path_factory) -> Venv:
    return cached_venv(tmp_path_factory, "stack", *STACK)


def make_facts(**data) -> dict:
    """A hand-made facts snapshot: probe data by name, every probe marked ok."""
    facts = {"schema": "tbdoctor.facts/1", "tbdoctor": "test", "collected_at": "2026-11-29",
             "target": {"python": "/envs/x/bin/python", "chosen_by": "--python"},
             "probes": {name: {"status": "ok", "section": name, "seconds": 0.1} for name in data}}
    facts.update(data)
    return facts


def python_facts(**overrides) -> dict:
    base = {"version": "3.11.7", "version_info": [3, 11, 7], "implementation": "CPython", "bits": 64,
            "executable": "/envs/x/bin/python", "prefix": "/envs/x", "base_prefix": "/usr",
            "platform": "linux", "machine": "x86_64", "env_kind": "venv", "env_evidence": "pyvenv.cfg",
            "pyvenv_cfg": {}, "externally_managed": None, "site_packages": "/envs/x/lib/python3.11/site-packages",
            "user_site": {"enabled": False, "path": None, "exists": False, "on_sys_path": False},
            "sys_path": [], "environ": {}, "pip": {"installed": True, "version": "24.0", "config": {}}}
    base.update(overrides)
    return base


def dist(name, version, requires=(), location="/envs/x/lib/python3.11/site-packages"):
    return {"name": name, "canonical": name.lower().replace("_", "-"), "version": version,
            "location": location, "metadata_dir": f"{location}/{name}-{version}.dist-info",
            "requires": list(requires), "requires_python": None, "installer": "pip", "top_level": [name]}


MARKERS_311 = {"implementation_name": "cpython", "implementation_version": "3.11.7", "os_name": "posix",
               "platform_machine": "x86_64", "platform_release": "6.1", "platform_system": "Linux",
               "platform_version": "#1", "python_full_version": "3.11.7",
               "platform_python_implementation": "CPython", "python_version": "3.11", "sys_platform": "linux"}


def packages_facts(*dists, shadowed=()) -> dict:
    return {"distributions": list(dists), "broken_metadata": [], "marker_environment": MARKERS_311,
            "shadowed_modules": list(shadowed)}


def make_wheel(wheelhouse: Path, name: str, version: str, requires=(), module_source: str = "",
               extra_files: dict | None = None) -> Path:
    """Hand-write a pure-Python wheel (no build backend, no network): a module
    named after the project (plus ``extra_files``, path -> text) and its dist-info,
    with a correct RECORD."""
    import base64
    import hashlib
    import zipfile
    wheelhouse.mkdir(parents=True, exist_ok=True)
    module = name.replace("-", "_")
    info = f"{module}-{version}.dist-info"
    files = {
        f"{module}/__init__.py": module_source or f"__version__ = {version!r}\n",
        f"{info}/METADATA": "\n".join(["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}",
                                       *[f"Requires-Dist: {r}" for r in requires]]) + "\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: tbdoctor-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        f"{info}/top_level.txt": module + "\n",
        **(extra_files or {}),
    }
    record = []
    path = wheelhouse / f"{module}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        for arc, text in files.items():
            data = text.encode()
            zf.writestr(arc, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            record.append(f"{arc},sha256={digest},{len(data)}")
        zf.writestr(f"{info}/RECORD", "\n".join(record + [f"{info}/RECORD,,"]) + "\n")
    return path


def make_sdist(wheelhouse: Path, name: str, version: str, build_wheel_body: str, requires=()) -> Path:
    """An sdist whose in-tree PEP 517 backend (no build requirements: works offline)
    gives metadata at once but runs ``build_wheel_body`` to build: a build that
    fails or hangs while pip's dry run (metadata only) succeeds."""
    import io
    import tarfile
    import textwrap
    wheelhouse.mkdir(parents=True, exist_ok=True)
    module = name.replace("-", "_")
    base = f"{module}-{version}"
    metadata = "\\n".join(["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}",
                           *[f"Requires-Dist: {r}" for r in requires]]) + "\\n"
    backend = textwrap.dedent(f'''
        import os
        def get_requires_for_build_wheel(config_settings=None):
            return []
        def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
            info = os.path.join(metadata_directory, "{base}.dist-info")
            os.makedirs(info)
            with open(os.path.join(info, "METADATA"), "w") as fh:
                fh.write("{metadata}")
            return "{base}.dist-info"
        def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
        ''') + textwrap.indent(textwrap.dedent(build_wheel_body), "    ")
    files = {"pyproject.toml": '[build-system]\nrequires = []\nbuild-backend = "backend"\nbackend-path = ["."]\n',
             "backend.py": backend,
             "PKG-INFO": metadata.replace("\\n", "\n")}
    path = wheelhouse / f"{base}.tar.gz"
    with tarfile.open(path, "w:gz") as tf:
        for arc, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"{base}/{arc}")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def pip_install_offline(env: Venv, wheelhouse: Path, *requirements: str, no_deps: bool = True) -> None:
    """Install from a local wheelhouse only (``--no-deps`` by default: to build a conflict)."""
    subprocess.run([str(env.python), "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-index",
                    "--find-links", str(wheelhouse), *(["--no-deps"] if no_deps else []), *requirements],
                   check=True, capture_output=True, text=True, timeout=300)


def pip_freeze(env: Venv) -> str:
    return subprocess.run([str(env.python), "-m", "pip", "freeze", "--all"], capture_output=True, text=True,
                          check=True, timeout=120).stdout


def copy_venv(env: Venv, dest: Path) -> Venv:
    """A copy of ``env`` at ``dest`` (cheaper than building one). Run its tools as
    ``python -m pip``: the copied scripts' shebangs still name the original."""
    import shutil
    shutil.copytree(env.path, dest, symlinks=True)
    return Venv(dest, dest / env.python.relative_to(env.path), dest / env.site.relative_to(env.path))


# --- GPU / CUDA: fake nvidia-smi executables and recorded NVML answers (tests/fixtures) ---

_FAKE_SMI = """#!/bin/sh
# Fake nvidia-smi for tests: answers from recorded outputs in {dir}
case "$1" in
  --query-gpu=index,compute_mode,*clocks_event_reasons*) f=health-new ;;
  --query-gpu=index,compute_mode,*) f=health ;;
  --query-gpu=index,fabric.state,*) f=fabric ;;
  --query-compute-apps=*) f=apps ;;
  --query-remapped-rows=*) f=remap ;;
  --query-gpu=*compute_cap*) f=query ;;
  --query-gpu=*) f=query-nocc ;;
  -L) f=list ;;
  '') f=table ;;
  *) f=other ;;
esac
if [ -e "{dir}/$f.hang" ]; then exec {sleep} 3600; fi
if [ -e "{dir}/$f.out" ]; then {cat} "{dir}/$f.out"; fi
if [ -e "{dir}/$f.rc" ]; then read rc < "{dir}/$f.rc"; exit "$rc"; fi
exit 0
"""


def fake_gpu_env(tmp_path: Path, smi: str | None = None, nvml: str = "library-not-found", **extra: str) -> dict:
    """An environment whose nvidia-smi (first on PATH) and NVML answer as recorded in
    tests/fixtures/nvidia-smi/<smi>/ and tests/fixtures/nvml/<nvml>.json. With smi=None,
    PATH keeps no nvidia-smi at all."""
    import shutil
    bin_dir = tmp_path / "fake-bin"
    bin_dir.mkdir(exist_ok=True)
    if smi is not None:
        script = bin_dir / "nvidia-smi"
        script.write_text(_FAKE_SMI.format(dir=FIXTURES / "nvidia-smi" / smi, sleep=shutil.which("sleep"),
                                           cat=shutil.which("cat")))
        script.chmod(0o755)
    path = [str(bin_dir)] + [d for d in os.environ.get("PATH", "").split(os.pathsep)
                             if d and not os.path.exists(os.path.join(d, "nvidia-smi"))]
    env = clean_env(PATH=os.pathsep.join(path), TBDOCTOR_TEST_NVML_RECORDING=str(FIXTURES / "nvml" / f"{nvml}.json"))
    for name in ("CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES", "CUDA_HOME", "CUDA_PATH", "CUDA_ROOT"):
        env.pop(name, None)
    env.update(extra)
    return env


def gpu_device(index=0, name="NVIDIA A100-SXM4-80GB", cc="8.0", uuid=None, **overrides) -> dict:
    """One entry of facts["gpu"]["gpus"]."""
    entry = {"index": index, "name": name, "uuid": uuid or f"GPU-3f8a2c1e-7b4d-4e2a-9c1f-5d6e7a8b9c0{index}",
             "memory_total_mib": 81920, "memory_used_mib": 4, "compute_capability": cc,
             "compute_capability_source": "nvml", "mig_mode": "disabled", "persistence_mode": "enabled",
             "pci_bus_id": f"00000000:0{index}:00.0"}
    entry.update(overrides)
    return entry


def gpu_facts(gpus=(), driver="535.104.05", cuda="12.2", **overrides) -> dict:
    """facts["gpu"] as the gpu probe writes it; gpus=() with driver=None is a machine without NVIDIA."""
    listed = list(gpus)
    base = {"source": "nvml" if listed else None, "driver_version": driver if listed else None,
            "cuda_driver_version": cuda if listed else None, "gpus": listed,
            "nvml": {"status": "ok", "error": None, "code": None} if listed else
                    {"status": "failed", "error": "NVML Shared Library Not Found", "code": "NVML_ERROR_LIBRARY_NOT_FOUND"},
            "nvidia_smi": None if listed else {"path": None, "status": "not-found", "method": None, "error": None,
                                               "output_tail": None},
            "driver": {"kernel_module_version": driver if listed else None,
                       "modules": {"nvidia": bool(listed), "nouveau": False},
                       "device_nodes": ["nvidia-uvm", "nvidia0", "nvidiactl"] if listed else [], "pci_devices": []},
            "wsl": {"detected": False, "libcuda": None, "dxg": False}, "container": None,
            "visible_devices": {"CUDA_VISIBLE_DEVICES": None, "NVIDIA_VISIBLE_DEVICES": None},
            "other_accelerators": []}
    base.update(overrides)
    return base


def cuda_toolkit(version="13.0", release="13.0.88", root="/usr/local/cuda-13.0", on_path=True, from_cuda_home=False):
    nvcc = f"{root}/bin/nvcc"
    return {"nvcc": nvcc, "paths": [nvcc], "realpath": nvcc, "root": root, "version": version, "release": release,
            "found_via": ["PATH"] if on_path else ["standard location"], "on_path": on_path,
            "from_cuda_home": from_cuda_home, "error": None}


def cuda_facts(toolkits=(), libraries=None, **overrides) -> dict:
    """facts["cuda"] as the cuda probe writes it."""
    kits = list(toolkits)
    base = {"toolkits": kits, "path_nvcc": next((k["nvcc"] for k in kits if k["on_path"]), None),
            "env": {"CUDA_HOME": None, "CUDA_PATH": None, "CUDA_ROOT": None}, "ld_library_path": [],
            "ldconfig": True, "libraries": {"libcuda": [], "libcudart": [], "libcudnn": [], "libnccl": []},
            "pip_wheels": [], "pip_wheels_error": None}
    base["libraries"].update(libraries or {})
    base.update(overrides)
    return base


def on_a_terminal(argv: list[str], answers: str, env: dict, timeout: float = 120) -> tuple[int, str]:
    """Run the CLI with a pseudo-terminal as stdin and stdout, typing ``answers`` (the
    terminal keeps them until each prompt reads its line)."""
    import pty
    import re
    import select
    import time
    leader, follower = pty.openpty()
    child = subprocess.Popen([sys.executable, "-c", _BOOT, *argv], stdin=follower, stdout=follower,
                             stderr=subprocess.PIPE, env=env, close_fds=True)
    os.close(follower)
    os.write(leader, answers.encode())
    output, deadline = b"", time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the child closed the terminal
                break
            output += chunk
        elif child.poll() is not None:
            break
    child.wait(timeout=30)
    os.close(leader)
    return child.returncode, re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", output.decode(errors="replace"))


def printed_pip_installs(report: dict) -> list[str]:
    """Every `pip install` command a check report prints that pip's resolver verified
    (the hint of an unverified one says "Not verified by pip")."""
    return [fix["command"] for check in report["checks"] for fix in check.get("fixes", ())
            if fix["kind"] == "pip-install" and "Not verified by pip" not in check.get("hint", "")]


_PROVEN: set[tuple[str, str]] = set()  # (command, environment) already dry-run in this session


def assert_installable(report: dict, env: dict | None = None) -> int:
    """Run every verified `pip install` the report prints with --dry-run; each must succeed. Returns how many."""
    import shlex
    commands = printed_pip_installs(report)
    for command in commands:
        key = (command, json.dumps(env, sort_keys=True))
        if key in _PROVEN:
            continue
        _PROVEN.add(key)
        argv = shlex.split(command)
        if argv[1:3] == ["-m", "pip"] and subprocess.run([argv[0], "-c", "import pip"], capture_output=True).returncode:
            argv = [sys.executable, "-m", "pip", "--python", *argv[:1], *argv[3:]]  # after the ensurepip check prints
        at = argv.index("install") + 1
        proc = subprocess.run(argv[:at] + ["--dry-run", "--quiet"] + argv[at:], capture_output=True, text=True,
                              env=env or clean_env(), timeout=300)
        assert proc.returncode == 0, f"{command} cannot succeed:\n{proc.stderr[-2000:]}"
    return len(commands)
