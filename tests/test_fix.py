"""End-to-end tests of `tbdoctor fix`: real pip, real venvs, local wheelhouses, no network."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import pytest

from conftest import (REPO, check_json, clean_env, copy_venv, ids, make_sdist, make_venv, make_wheel, on_a_terminal,
                      pip_freeze, pip_install_offline, tbdoctor)

_BOOT = f"import sys; sys.path.insert(0, {str(REPO)!r}); from tbdoctor.cli import main; sys.exit(main())"


@pytest.fixture
def state(tmp_path):
    return tmp_path / "state"


def fix(*args, state, extra_env=None, **kwargs):
    """`tbdoctor fix`, limited to the python and pip findings: these venvs have no frameworks
    (tensorboardx.missing and its kin are left alone, as the user would with --only)."""
    scope = () if {"--history", "--rollback"} & set(args) else ("--only", "pip.*", "python.*")
    return tbdoctor("fix", *args, *scope, env=clean_env(TBDOCTOR_STATE_DIR=str(state), **(extra_env or {})), **kwargs)


def clean(python) -> bool:
    """No error or warning in the python and pip sections."""
    report, _ = check_json("--python", str(python), "--only", "python", "pip")
    return report["summary"]["error"] == report["summary"]["warning"] == 0


def offline(wheelhouse: Path) -> tuple[str, ...]:
    return ("--no-index", "--find-links", str(wheelhouse))


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """Built once: a venv (with pip) with a version conflict (alpha needs beta>=2, beta 1.0
    installed) and delta 2.0, a base venv with delta 1.0, and a wheelhouse offering beta 2.0."""
    root = tmp_path_factory.mktemp("template")
    wheels = root / "wheels"
    for name, version, requires in (("alpha", "1.0", ["beta>=2"]), ("beta", "1.0", []), ("beta", "2.0", []),
                                    ("delta", "2.0", [])):
        make_wheel(wheels, name, version, requires)
    base = make_venv(root, "base")
    base.add_dist("delta", "1.0", module_source="")
    env = make_venv(root, "env", with_pip=True)
    pip_install_offline(env, wheels, "alpha==1.0", "beta==1.0", "delta==2.0")
    return base, env, wheels


@pytest.fixture
def broken(template, tmp_path):
    """A private copy of the template, the venv layered over the base: delta is installed twice."""
    base, env, wheels = template
    base, env = copy_venv(base, tmp_path / "base"), copy_venv(env, tmp_path / "env")
    (env.site / "_base.pth").write_text(str(base.site) + "\n")
    shutil.copytree(wheels, tmp_path / "wheels")
    return env, tmp_path / "wheels"


def test_conflict_and_duplicate_fixed_recheck_clean_history_and_rollback(broken, state):
    env, wheels = broken
    before = pip_freeze(env)
    report, _ = check_json("--python", str(env.python))
    assert {"pip.version-conflict", "pip.duplicate-distribution"} <= ids(report)

    pending = fix("--python", str(env.python), *offline(wheels), state=state)  # not a TTY, no --yes
    assert pending.returncode == 1
    assert "Pending: run again with --yes" in pending.stdout
    assert pip_freeze(env) == before and not (state / "snapshots").exists()

    dry = fix("--python", str(env.python), "--dry-run", *offline(wheels), state=state)
    assert dry.returncode == 1 and "Dry run: nothing was changed." in dry.stdout
    assert "uninstall delta" in dry.stdout and "install beta>=2" in dry.stdout
    assert dry.stdout.index("uninstall delta") < dry.stdout.index("install beta>=2")
    assert re.search(r"upgrade\s+beta\s+1\.0\s+2\.0", dry.stdout) and re.search(r"remove\s+delta\s+2\.0", dry.stdout)
    assert pip_freeze(env) == before

    secret = "--extra-index-url=https://me:s3cret@127.0.0.1:9/simple"  # ignored under --no-index; never shown
    done = fix("--python", str(env.python), "--yes", *offline(wheels), secret, state=state)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "s3cret" not in done.stdout + done.stderr
    assert "Fix applied" in done.stdout
    assert clean(env.python)
    assert "beta==2.0" in pip_freeze(env) and "delta==1.0" in pip_freeze(env)  # the base copy shows through

    [snap_dir] = (state / "snapshots").iterdir()
    snap = json.loads((snap_dir / "snapshot.json").read_text())
    assert snap["outcome"] == "applied"
    assert "s3cret" not in (snap_dir / "snapshot.json").read_text() and "https://<redacted>@127.0.0.1:9" in snap["plan"][1]
    assert sorted(w["file"] for w in snap["wheels"]) == ["beta-1.0-py3-none-any.whl", "delta-2.0-py3-none-any.whl"]
    history = fix("--history", state=state)
    assert snap["id"] in history.stdout and "applied" in history.stdout

    back = fix("--rollback", state=state)
    assert back.returncode == 0, back.stdout + back.stderr
    assert f"Restored snapshot {snap['id']}" in back.stdout
    assert pip_freeze(env) == before


def test_duplicate_family_pair_is_removed_and_one_member_reinstalled(tmp_path, state):
    """Two distributions that write the same package (opencv-python and its headless twin both
    own cv2/): the family finding's fix uninstalls both, then installs the preferred one."""
    wheels = tmp_path / "wheels"
    for name in ("opencv-python", "opencv-python-headless"):
        make_wheel(wheels, name, "4.10.0.84", extra_files={"cv2/__init__.py": f"BUILD = {name!r}\n"})
    env = make_venv(tmp_path, "env", with_pip=True)
    pip_install_offline(env, wheels, "opencv-python==4.10.0.84")
    pip_install_offline(env, wheels, "opencv-python-headless==4.10.0.84")

    def build():
        return subprocess.run([str(env.python), "-c", "import cv2; print(cv2.BUILD)"], capture_output=True,
                              text=True, timeout=60).stdout.strip()

    assert build() == "opencv-python-headless"  # the second install overwrote the first one's cv2/
    report, _ = check_json("--python", str(env.python))
    [family] = [c for c in report["checks"] if c["id"] == "pip.duplicate-install"]
    assert [f["kind"] for f in family["fixes"]] == ["pip-uninstall", "pip-install"]

    done = fix("--python", str(env.python), "--yes", *offline(wheels), state=state)
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"uninstall opencv-python opencv-python-headless", done.stdout)
    assert re.search(r"remove\s+opencv-python-headless", done.stdout)
    assert re.search(r"reinstall\s+opencv-python\s+4\.10\.0\.84\s+4\.10\.0\.84", done.stdout)
    assert clean(env.python)
    assert [ln for ln in pip_freeze(env).splitlines() if ln.startswith("opencv")] == ["opencv-python==4.10.0.84"]
    assert build() == "opencv-python"  # the kept member's own files, intact


def test_unsatisfiable_fix_is_refused_before_anything_changes(broken, state, tmp_path):
    env, wheels = broken
    (wheels / "beta-2.0-py3-none-any.whl").unlink()  # no beta>=2 anywhere
    before = pip_freeze(env)
    proc = fix("--python", str(env.python), "--yes", "--ignore", "pip.duplicate-distribution", *offline(wheels),
               state=state)
    assert proc.returncode == 1
    assert "install beta" not in proc.stdout  # pip's resolver rejected it before the plan was made
    assert "Nothing tbdoctor can apply" in proc.stdout
    assert pip_freeze(env) == before
    assert not (state / "snapshots").exists()  # refused before the snapshot
    report, _ = check_json("--python", str(env.python), "--only", "pip",
                           env=clean_env(PIP_CONFIG_FILE=os.devnull, PIP_NO_INDEX="1", PIP_FIND_LINKS=str(wheels)))
    conflict = next(c for c in report["checks"] if c["id"] == "pip.version-conflict")
    assert conflict["fixes"] == [] and "alpha 1.0 requires beta>=2" in conflict["hint"]


def test_failing_step_rolls_back_what_earlier_steps_changed(broken, state):
    env, wheels = broken
    (wheels / "beta-2.0-py3-none-any.whl").unlink()
    make_sdist(wheels, "beta", "2.0", 'raise RuntimeError("the build of beta fails")\n')
    before = pip_freeze(env)
    proc = fix("--python", str(env.python), "--yes", *offline(wheels), state=state)
    assert proc.returncode == 1
    assert "✓ [1/2] uninstall delta" in proc.stdout  # it did change the environment ...
    assert "✗ Fix rolled back: step 2 (install beta>=2) failed" in proc.stdout
    assert "Restored: reinstalled delta 2.0." in proc.stdout
    assert pip_freeze(env) == before  # ... and put it back (delta 2.0 from the snapshot's own wheel)


def test_ctrl_c_during_apply_restores_the_snapshot(broken, state, tmp_path):
    env, wheels = broken
    marker = tmp_path / "building"
    (wheels / "beta-2.0-py3-none-any.whl").unlink()
    make_sdist(wheels, "beta", "2.0", "import time\nopen(os.environ['TBD_MARKER'], 'w').close()\ntime.sleep(300)\n")
    before = pip_freeze(env)
    child = subprocess.Popen([sys.executable, "-c", _BOOT, "fix", "--python", str(env.python), "--yes",
                              *offline(wheels), "--only", "pip.*"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=clean_env(TBDOCTOR_STATE_DIR=str(state), TBD_MARKER=str(marker)))
    deadline = time.monotonic() + 120
    while not marker.exists() and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert marker.exists(), child.communicate()
    child.send_signal(signal.SIGINT)
    out, err = child.communicate(timeout=120)
    assert child.returncode == 130, out + err
    assert "✗ Fix rolled back: interrupted (Ctrl-C)" in out
    assert pip_freeze(env) == before
    [snap_dir] = (state / "snapshots").iterdir()
    assert json.loads((snap_dir / "snapshot.json").read_text())["outcome"].startswith("rolled back: interrupted")


def test_a_distribution_that_cannot_be_snapshotted_stops_the_fix_before_any_change(broken, state):
    env, wheels = broken
    [record] = env.site.glob("beta-1.0.dist-info/RECORD")
    record.unlink()  # installed by hand or half-removed: no list of its files
    before = pip_freeze(env)
    proc = fix("--python", str(env.python), "--yes", *offline(wheels), state=state)
    assert proc.returncode == 1
    assert ("✗ Refused: the plan would remove or replace what tbdoctor cannot put back exactly; nothing was "
            "changed") in proc.stdout
    assert "beta has no RECORD file: cannot tell which files are its own" in proc.stdout
    assert pip_freeze(env) == before and not (state / "snapshots").exists()


def test_fix_whose_result_checks_worse_is_rolled_back(broken, state):
    env, wheels = broken
    # beta 2.0 ships a start-up hook (.pth) that puts its vendored copy of `alpha` first on
    # sys.path: pip resolves it happily, but afterwards `import alpha` loads the wrong code.
    (wheels / "beta-2.0-py3-none-any.whl").unlink()
    make_wheel(wheels, "beta", "2.0", extra_files={
        "beta-hook.pth": "import sys; sys.path.insert(0, sys.prefix + '/beta_vendor')\n",
        "beta-2.0.data/data/beta_vendor/alpha/__init__.py": "VENDORED = True\n"})
    before = pip_freeze(env)
    proc = fix("--python", str(env.python), "--yes", *offline(wheels), state=state)
    assert proc.returncode == 1
    assert "✓ [2/2] install beta>=2" in proc.stdout
    assert "✗ Fix rolled back: the check after applying found new errors: python.shadowed-module:" in proc.stdout
    assert pip_freeze(env) == before
    assert not (env.site / "beta-hook.pth").exists() and not (env.path / "beta_vendor" / "alpha").exists()


def test_plan_that_would_break_another_package_is_refused(broken, state):
    env, wheels = broken
    env.add_dist("epsilon", "1.0", requires=["delta>=2"])  # removing the venv's delta 2.0 would break it
    before = pip_freeze(env)
    proc = fix("--python", str(env.python), "--yes", *offline(wheels), state=state)
    assert proc.returncode == 1
    assert "Refused: the plan would break other installed packages" in proc.stdout
    assert "epsilon 1.0 requires delta>=2, but delta 1.0 would be installed" in proc.stdout
    assert pip_freeze(env) == before and not (state / "snapshots").exists()


def test_uv_environment_without_pip_is_fixed_with_uv_pip(tmp_path, state):
    uv = pytest.importorskip("uv").find_uv_bin()
    wheels = tmp_path / "wheels"
    for name, version, requires in (("alpha", "1.0", ["beta>=2"]), ("beta", "1.0", []), ("beta", "2.0", [])):
        make_wheel(wheels, name, version, requires)
    env = tmp_path / "uvenv"
    subprocess.run([uv, "venv", "-q", str(env)], check=True, capture_output=True, timeout=120)
    python = str(env / "bin" / "python")
    subprocess.run([uv, "pip", "install", "-q", "--python", python, *offline(wheels), "--no-deps", "alpha==1.0",
                    "beta==1.0"], check=True, capture_output=True, timeout=120)

    def freeze():
        return subprocess.run([uv, "pip", "freeze", "--python", python], capture_output=True, text=True).stdout

    path = os.path.dirname(uv) + os.pathsep + os.environ["PATH"]
    done = fix("--python", python, "--yes", *offline(wheels), state=state, extra_env={"PATH": path})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Plan (run with uv pip)" in done.stdout and clean(python)
    assert freeze() == "alpha==1.0\nbeta==2.0\n"
    back = fix("--rollback", state=state, extra_env={"PATH": path})
    assert back.returncode == 0, back.stdout + back.stderr
    assert freeze() == "alpha==1.0\nbeta==1.0\n"


def _externally_managed_python(root: Path) -> Path:
    """A real non-venv CPython: the base interpreter's binary copied under ``root``, with a
    stdlib folder of links to the real one, its own site-packages, and an EXTERNALLY-MANAGED
    file. pip decides PEP 668 exactly so: not in a venv, and the marker in
    sysconfig's stdlib folder, which Python derives from where its binary lies."""
    base = Path(sys.base_prefix)
    binary = Path(getattr(sys, "_base_executable", sys.executable)).resolve()
    stdlib = Path(sysconfig.get_path("stdlib", vars={"installed_base": str(base), "base": str(base)}))
    (root / "bin").mkdir(parents=True)
    shutil.copy2(binary, root / "bin" / binary.name)
    mine = root / stdlib.relative_to(base)
    mine.mkdir(parents=True)
    for entry in stdlib.iterdir():
        if entry.name not in ("site-packages", "dist-packages", "EXTERNALLY-MANAGED"):
            (mine / entry.name).symlink_to(entry)
    python = root / "bin" / binary.name
    subprocess.run([str(python), "-m", "ensurepip"], check=True, capture_output=True, timeout=300)
    (mine / "EXTERNALLY-MANAGED").write_text("[externally-managed]\nError=managed by the tbdoctor tests\n")
    return python


@pytest.mark.skipif(os.name == "nt", reason="builds a POSIX interpreter tree")
def test_externally_managed_interpreter_is_refused_unless_overridden(tmp_path, state):
    python = _externally_managed_python(tmp_path / "system")
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                               capture_output=True, text=True, check=True).stdout.strip())
    wheels = tmp_path / "wheels"
    make_wheel(wheels, "beta", "2.0")
    refused_by_pip = subprocess.run([str(python), "-m", "pip", "install", *offline(wheels), "beta"],
                                    capture_output=True, text=True, timeout=120)
    assert "externally-managed-environment" in refused_by_pip.stderr  # pip itself sees PEP 668 here
    from conftest import Venv
    Venv(python.parent.parent, python, site).add_dist("alpha", "1.0", requires=["beta>=2"])
    Venv(python.parent.parent, python, site).add_dist("beta", "1.0")
    freeze = subprocess.run([str(python), "-m", "pip", "freeze", "--all"], capture_output=True, text=True).stdout

    proc = fix("--python", str(python), "--yes", *offline(wheels), state=state)
    assert proc.returncode == 1
    assert "Refused:" in proc.stdout and "externally managed (PEP 668 marker" in proc.stdout
    assert f"tbdoctor setup ./tbdoctor-env --python {python}" in proc.stdout
    assert "--break-system-packages" in proc.stdout
    assert subprocess.run([str(python), "-m", "pip", "freeze", "--all"], capture_output=True, text=True).stdout == freeze
    assert not (state / "snapshots").exists()

    forced = fix("--python", str(python), "--yes", "--break-system-packages", *offline(wheels), state=state)
    assert forced.returncode == 0, forced.stdout + forced.stderr
    assert "beta==2.0" in subprocess.run([str(python), "-m", "pip", "freeze"], capture_output=True, text=True).stdout


@pytest.mark.skipif(os.name == "nt", reason="pseudo-terminals are POSIX")
def test_on_a_terminal_fix_asks_and_no_changes_nothing(broken, state):
    env, wheels = broken
    before = pip_freeze(env)
    code, screen = on_a_terminal(["fix", "--python", str(env.python), *offline(wheels), "--only", "pip.*"], "n\r",
                                  clean_env(TBDOCTOR_STATE_DIR=str(state), TERM="dumb"))
    assert "Apply this plan?" in screen
    assert code == 1
    assert pip_freeze(env) == before and not (state / "snapshots").exists()
