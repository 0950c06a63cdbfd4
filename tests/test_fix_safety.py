"""`tbdoctor fix` does no harm: every kind of distribution comes back exactly, a killed fix
rolls back completely, a failed restore says so, traded problems are undone, one fix at a
time per environment, old snapshots pruned. Real pip, real venvs, local wheelhouses."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import zipfile
from pathlib import Path

import pytest

from conftest import (REPO, cached_venv, check_json, clean_env, copy_venv, make_sdist, make_venv, make_wheel,
                      pip_freeze, pip_install_offline)
from test_fix import _BOOT, broken, fix, offline, state, template  # noqa: F401  (fixtures)

_BOOKKEEPING = {"RECORD", "INSTALLER", "REQUESTED", "direct_url.json"}


def build_wheel(folder: Path, name: str, version: str, tags=("py3-none-any",), files=None, requires=(),
                entry_points: str = "", purelib: bool = True) -> Path:
    """Hand-write a wheel with these ``Tag:`` lines (the file named by their compressed set)."""
    module = name.replace("-", "_")
    info = f"{module}-{version}.dist-info"
    parts = [list(dict.fromkeys(t.split("-")[i] for t in tags)) for i in range(3)]
    content = {**(files or {}),
               f"{info}/METADATA": "\n".join(["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}",
                                              *[f"Requires-Dist: {r}" for r in requires]]) + "\n",
               f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: tbdoctor-tests\n"
                                f"Root-Is-Purelib: {'true' if purelib else 'false'}\n"
                                + "".join(f"Tag: {t}\n" for t in tags)}
    if entry_points:
        content[f"{info}/entry_points.txt"] = entry_points
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{module}-{version}-{'-'.join('.'.join(p) for p in parts)}.whl"
    record = []
    with zipfile.ZipFile(path, "w") as zf:
        for arc, data in content.items():
            data = data if isinstance(data, bytes) else data.encode()
            entry = zipfile.ZipInfo(arc, date_time=(2020, 1, 1, 0, 0, 0))
            entry.external_attr = (0o755 if "/scripts/" in arc else 0o644) << 16
            zf.writestr(entry, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            record.append(f"{arc},sha256={digest},{len(data)}")
        zf.writestr(f"{info}/RECORD", "\n".join(record + [f"{info}/RECORD,,"]) + "\n")
    return path


def manifest(root: Path) -> dict[str, str]:
    """Every file under ``root``: path -> sha256 and executable bit (bytecode and pip's bookkeeping aside)."""
    found = {}
    for path in root.rglob("*"):
        if path.is_dir() or "__pycache__" in path.parts or path.suffix == ".pyc":
            continue
        if path.name in _BOOKKEEPING and path.parent.name.endswith(".dist-info"):
            continue
        rel = path.relative_to(root).as_posix()
        found[rel] = hashlib.sha256(path.read_bytes()).hexdigest() + (" x" if os.access(path, os.X_OK) else "")
    return found


def snapshot_json(state: Path) -> dict:
    [path] = (state / "snapshots").glob("*/snapshot.json")
    return json.loads(path.read_text())


def start_fix(env, wheels, state, **extra_env) -> subprocess.Popen:
    """`tbdoctor fix --yes` as a child process in its own process group."""
    return subprocess.Popen([sys.executable, "-c", _BOOT, "fix", "--python", str(env.python), "--yes",
                             *offline(wheels), "--only", "pip.*", "python.*"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            env=clean_env(TBDOCTOR_STATE_DIR=str(state), **extra_env))


def wait_for(condition, child: subprocess.Popen, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not condition() and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert condition(), child.communicate(timeout=60) if child.poll() is not None else "timed out"


def test_universal_py2_py3_wheel_comes_back_after_rollback(tmp_path_factory, tmp_path, state):
    """Observed: protobuf 3.20.1 (py2.py3-none-any) was repacked as ...-py2-none-any.whl, which pip on
    Python 3 refuses: the rollback lost protobuf and still said "reinstalled protobuf"."""
    base = cached_venv(tmp_path_factory, "tensorboard-2.21", "tensorboard==2.21.0")
    env = copy_venv(base, tmp_path / "rp")
    subprocess.run([str(env.python), "-m", "pip", "install", "-q", "--disable-pip-version-check", "protobuf==3.20.1"],
                   check=True, capture_output=True, timeout=600)
    before = pip_freeze(env)
    report, _ = check_json("--python", str(env.python), "--only", "tensorboard", "pip")
    # TensorBoard's own plugins fail with the old protobuf: that is the protobuf finding, not "uninstall TensorBoard"
    assert not [f for c in report["checks"] for f in c["fixes"] if f["kind"] == "pip-uninstall"], report["checks"]
    done = fix("--python", str(env.python), "--yes", state=state)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "protobuf==3.20.1" not in pip_freeze(env)
    assert [w["file"] for w in snapshot_json(state)["wheels"]] == ["protobuf-3.20.1-py2.py3-none-any.whl"]
    back = fix("--rollback", "--python", str(env.python), state=state)
    assert back.returncode == 0, back.stdout + back.stderr
    assert "reinstalled protobuf 3.20.1" in back.stdout
    assert pip_freeze(env) == before


@pytest.mark.skipif(os.name == "nt", reason="builds POSIX venvs with a setup.py install")
def test_every_kind_of_distribution_is_restored_exactly_or_never_removed(tmp_path, state):
    from packaging import tags
    from packaging.version import Version

    from tbdoctor import pipcmd, snapshot
    from tbdoctor.target import choose

    wheels = tmp_path / "wheels"
    platform = next(tags.platform_tags())
    py = f"cp{sys.version_info[0]}{sys.version_info[1]}"
    build_wheel(wheels, "uni", "1.0", ("py2-none-any", "py3-none-any"))
    build_wheel(wheels, "stable-abi", "1.0", (f"{py}-abi3-{platform}",), purelib=False,
                files={"stable_abi/_ext.abi3.so": b"\x7fELF not really\x00", "stable_abi/__init__.py": ""})
    build_wheel(wheels, "native", "1.0", (f"{py}-{py}-{platform}",), purelib=False,
                files={f"native/_core.{py}.so": b"\x7fELF\x02\x01", "native/__init__.py": ""})
    build_wheel(wheels, "pure", "1.0", files={"pure.py": "X = 1\n"})
    build_wheel(wheels, "tool", "1.0", files={
        "tool/__init__.py": "def main():\n    print('tool')\n",
        "tool-1.0.data/scripts/tool-raw": "#!python\nprint('raw')\n",
        "tool-1.0.data/data/share/tool/notes.txt": "data file\n"},
        entry_points="[console_scripts]\ntool = tool:main\n")
    build_wheel(wheels, "ns-a", "1.0", files={"nspkg/a/__init__.py": "A = 1\n"})
    build_wheel(wheels, "ns-b", "1.0", files={"nspkg/b/__init__.py": "B = 1\n"})
    build_wheel(wheels, "needs-old", "1.0", requires=["legacy>=2", "edit>=2"])
    build_wheel(wheels, "legacy", "2.0")
    build_wheel(wheels, "edit", "2.0")
    env = make_venv(tmp_path, "env", with_pip=True)
    pip_install_offline(env, wheels, "uni", "stable-abi", "native", "pure", "tool", "ns-a", "ns-b", "needs-old")
    legacy = tmp_path / "legacy-src"
    (legacy / "legacy").mkdir(parents=True)
    (legacy / "legacy" / "__init__.py").write_text("OLD = True\n")
    (legacy / "setup.py").write_text("from setuptools import setup\nsetup(name='legacy', version='1.0', "
                                     "packages=['legacy'])\n")
    subprocess.run([str(env.python), "setup.py", "-q", "install", "--single-version-externally-managed",
                    "--record", str(tmp_path / "record.txt")], cwd=legacy, check=True, capture_output=True, timeout=300)
    edit = make_sdist(tmp_path / "edit-sdist", "edit", "1.0", "raise RuntimeError('not built')\n").parent
    subprocess.run(["tar", "-xzf", str(edit / "edit-1.0.tar.gz"), "-C", str(edit)], check=True)
    (edit / "edit-1.0" / "backend.py").write_text(textwrap.dedent('''
        import base64, hashlib, os, zipfile
        def get_requires_for_build_editable(config_settings=None):
            return []
        def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
            files = {"__editable__.edit-1.0.pth": os.path.abspath("src") + "\\n",
                     "edit-1.0.dist-info/METADATA": "Metadata-Version: 2.1\\nName: edit\\nVersion: 1.0\\n",
                     "edit-1.0.dist-info/WHEEL": "Wheel-Version: 1.0\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n"}
            name = "edit-1.0-py3-none-any.whl"
            with zipfile.ZipFile(os.path.join(wheel_directory, name), "w") as zf:
                record = []
                for arc, text in files.items():
                    zf.writestr(arc, text)
                    digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
                    record.append(arc + ",sha256=" + digest + "," + str(len(text)))
                zf.writestr("edit-1.0.dist-info/RECORD", "\\n".join(record + ["edit-1.0.dist-info/RECORD,,"]) + "\\n")
            return name
    '''))
    subprocess.run([str(env.python), "-m", "pip", "install", "-q", "--no-index", "--no-build-isolation", "-e",
                    str(edit / "edit-1.0")], check=True, capture_output=True, timeout=300)
    before_freeze, before_files = pip_freeze(env), manifest(env.path)
    assert "legacy==1.0" in before_freeze and "-e " in before_freeze and "uni==1.0" in before_freeze

    # A plan that would replace the legacy and the editable install stops before changing anything.
    refused = fix("--python", str(env.python), "--yes", *offline(wheels), state=state)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "Refused: the plan would remove or replace what tbdoctor cannot put back exactly" in refused.stdout
    assert "legacy is installed as legacy-1.0-py" in refused.stdout and "egg-info (a legacy setup.py install" in refused.stdout
    assert "edit is an editable install of file://" in refused.stdout
    assert pip_freeze(env) == before_freeze and manifest(env.path) == before_files
    assert not (state / "snapshots").exists()

    # Snapshot everything, empty the environment (pip aside), restore offline: identical.
    target = choose(str(env.python))
    dists = snapshot.current_distributions(target)
    snap = snapshot.create(target, {"python": {"prefix": str(env.path)}, "packages": {"distributions": dists}},
                           [], [], False)
    names = {d["canonical"] for d in dists} - {"pip"}
    failed = snapshot.stash(snap, target, names)
    assert set(failed) == {"legacy", "edit"}, failed  # never removed: no faithful copy
    removable = sorted(names - set(failed))
    assert {"uni", "stable-abi", "native", "pure", "tool", "ns-a", "ns-b", "setuptools"} <= set(removable)
    subprocess.run([str(env.python), "-m", "pip", "uninstall", "-y", *removable], check=True, capture_output=True)
    assert not (env.path / "bin" / "tool").exists() and "uni==" not in pip_freeze(env)
    pip = pipcmd.Pip(str(env.python), False, Version("23.0"))
    restored = snapshot.restore(snap, pip, target)
    assert restored.ok, restored
    assert sorted(r.split()[0] for r in restored.reinstalled) == removable
    assert pip_freeze(env) == before_freeze
    assert manifest(env.path) == before_files


def test_killed_fix_rolls_back_removals_and_new_installs(broken, state, tmp_path):
    """Observed: a fix killed mid-way left its snapshot "pending" with no record of what it touched,
    and --rollback left behind what the plan had newly installed. Also: one fix at a time."""
    env, wheels = broken
    before = pip_freeze(env)
    # 1. Killed during a pip step: step 1 removed delta 2.0, step 2 builds beta 2.0 (hangs).
    (wheels / "beta-2.0-py3-none-any.whl").unlink()
    marker = tmp_path / "building"
    make_sdist(wheels, "beta", "2.0", "import time\nopen(os.environ['TBD_MARKER'], 'w').close()\ntime.sleep(300)\n")
    first = start_fix(env, wheels, state, TBD_MARKER=str(marker))
    wait_for(marker.exists, first)
    journal = {e["step"]: e["status"] for e in snapshot_json(state)["journal"]}
    assert journal == {"1": "done", "2": "running"}

    second = fix("--python", str(env.python), "--yes", *offline(wheels), state=state,
                 extra_env={"TBDOCTOR_LOCK_WAIT": "1"})
    assert second.returncode == 1
    assert f"another tbdoctor is changing {env.python} (pid {first.pid}, started " in second.stdout
    assert "tbdoctor fix --python" in second.stdout

    os.killpg(first.pid, signal.SIGKILL)
    first.communicate(timeout=60)
    snap = snapshot_json(state)
    assert snap["outcome"] == "pending" and snap["may_touch"] == ["beta", "delta"]
    assert "delta==2.0" not in pip_freeze(env)
    back = fix("--rollback", "--python", str(env.python), state=state)  # takes over the dead fix's lock
    assert back.returncode == 0, back.stdout + back.stderr
    assert "is pending" in back.stdout and "reinstalled delta 2.0" in back.stdout
    assert pip_freeze(env) == before
    shutil.rmtree(state / "snapshots")

    # 2. Killed after pip installed beta 2.0 and its new dependency gamma, while checking again.
    (wheels / "beta-2.0.tar.gz").unlink()
    make_wheel(wheels, "beta", "2.0", ["gamma"])
    make_wheel(wheels, "gamma", "1.0", extra_files={
        "gamma-hold.pth": "import os, time; p = os.environ.get('TBD_HOLD'); "
                          "p and (open(p, 'w').close(), time.sleep(300))\n"})
    hold = tmp_path / "held"
    child = start_fix(env, wheels, state, TBD_HOLD=str(hold))
    wait_for(hold.exists, child)
    journal = {e["step"]: e["status"] for e in snapshot_json(state)["journal"]}
    assert journal == {"1": "done", "2": "done", "check": "running"}
    os.killpg(child.pid, signal.SIGKILL)
    child.communicate(timeout=60)
    assert "gamma==1.0" in pip_freeze(env) and snapshot_json(state)["touched"] == []
    back = fix("--rollback", "--python", str(env.python), state=state)
    assert back.returncode == 0, back.stdout + back.stderr
    assert "removed gamma 1.0" in back.stdout
    assert pip_freeze(env) == before


def test_failed_restore_says_so_keeps_the_snapshot_and_retention_keeps_what_is_needed(broken, state):
    """Observed: a restore that could not reinstall a package still printed "reinstalled"; snapshots
    were never pruned."""
    env, wheels = broken
    before = pip_freeze(env)
    done = fix("--python", str(env.python), "--yes", *offline(wheels), state=state)
    assert done.returncode == 0, done.stdout + done.stderr
    first = snapshot_json(state)["id"]
    saved = state / "snapshots" / first / "wheels" / "beta-1.0-py3-none-any.whl"
    good = saved.read_bytes()
    saved.write_bytes(b"not a zip file")
    back = fix("--rollback", state=state)
    assert back.returncode == 1, back.stdout + back.stderr
    assert "reinstalled delta 2.0" in back.stdout and "reinstalled beta" not in back.stdout
    assert "✗ beta 1.0 is missing" in back.stdout
    assert f"✗ Restore failed: the environment does not match snapshot {first}" in back.stdout
    assert snapshot_json(state)["outcome"].startswith("restore incomplete: --rollback failed")
    [command] = [ln.strip()[2:] for ln in back.stdout.splitlines() if ln.strip().startswith("$ ")]
    assert f"--no-index --find-links {saved.parent} --no-deps" in command and command.endswith("beta==1.0")
    pruned = fix("--prune", "--keep", "1", state=state)  # kept: it is unfinished
    assert pruned.returncode == 0 and "No snapshot to remove" in pruned.stdout and saved.exists()
    saved.write_bytes(good)  # the user repairs the wheel and runs the printed command
    subprocess.run(shlex.split(command), check=True, capture_output=True, timeout=300)
    assert pip_freeze(env) == before

    # Retention: older copies of the real snapshot, one of them unfinished (pending).
    folder = state / "snapshots"
    for n in range(12):
        copy = folder / f"20200101-0000{n:02d}-abcd"
        shutil.copytree(folder / first, copy)
        data = json.loads((copy / "snapshot.json").read_text())
        (copy / "snapshot.json").write_text(json.dumps(dict(data, id=copy.name,
                                                            outcome="pending" if n == 3 else "applied")))
    again = fix("--python", str(env.python), "--yes", "--keep", "4", *offline(wheels), state=state)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "Removed 8 old snapshot(s) of this environment: 20200101-000008-abcd" in again.stdout
    [newest] = [p.name for p in folder.iterdir() if not p.name.startswith("2020") and p.name != first]
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        ["20200101-000003-abcd", "20200101-000009-abcd", "20200101-000010-abcd", "20200101-000011-abcd", first, newest])
    capped = fix("--prune", "--max-mb", "0.001", state=state)  # the wheels are ~1 kB each: only the newest fits
    assert capped.returncode == 0 and "removed snapshot 20200101-000011-abcd" in capped.stdout
    assert "Removed 3 snapshot(s)" in capped.stdout
    assert sorted(p.name for p in folder.iterdir()) == sorted(["20200101-000003-abcd", first, newest])
    assert fix("--rollback", state=state).returncode == 0 and pip_freeze(env) == before
    assert oct(state.stat().st_mode & 0o777) == "0o700" and oct(folder.stat().st_mode & 0o777) == "0o700"


def test_fix_that_trades_a_conflict_for_another_is_rolled_back(broken, state):
    """Observed: the re-check compared finding ids only, so a fix that swapped the conflict on beta
    for a conflict on gamma (same id, pip.version-conflict) was kept."""
    env, wheels = broken
    make_wheel(wheels, "gamma", "1.0")
    pip_install_offline(env, wheels, "gamma==1.0")
    (wheels / "beta-2.0-py3-none-any.whl").unlink()
    # beta 2.0's sdist tells pip's resolver it needs nothing, but the wheel it builds requires gamma<1.
    make_sdist(wheels, "beta", "2.0", textwrap.dedent('''
        import base64, hashlib, zipfile
        files = {"beta/__init__.py": "", "beta-2.0.dist-info/WHEEL": "Wheel-Version: 1.0\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n",
                 "beta-2.0.dist-info/METADATA": "Metadata-Version: 2.1\\nName: beta\\nVersion: 2.0\\nRequires-Dist: gamma<1\\n"}
        record = []
        with zipfile.ZipFile(os.path.join(wheel_directory, "beta-2.0-py3-none-any.whl"), "w") as zf:
            for arc, text in files.items():
                zf.writestr(arc, text)
                digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
                record.append(arc + ",sha256=" + digest + "," + str(len(text)))
            zf.writestr("beta-2.0.dist-info/RECORD", "\\n".join(record + ["beta-2.0.dist-info/RECORD,,"]) + "\\n")
        return "beta-2.0-py3-none-any.whl"
    '''))
    before = pip_freeze(env)
    proc = fix("--python", str(env.python), "--yes", *offline(wheels), state=state)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "✓ [2/2] install beta>=2" in proc.stdout
    assert "✗ Fix rolled back: the check after applying found new errors: pip.version-conflict: gamma 1.0" in proc.stdout
    assert pip_freeze(env) == before


def test_before_and_after_are_compared_by_problem_not_by_id():
    """The rules' own findings: the conflict on beta fixed, one on gamma appeared (same id)."""
    from conftest import dist, make_facts, packages_facts, python_facts

    from tbdoctor.apply import new_errors
    from tbdoctor.findings import Report
    from tbdoctor.rules import evaluate

    def report(*dists):
        facts = make_facts(python=python_facts(), packages=packages_facts(*dists))
        return Report({}, evaluate(facts), facts)

    before = report(dist("alpha", "1.0", ["beta>=2"]), dist("beta", "1.0"), dist("gamma", "1.0"))
    traded = report(dist("alpha", "1.0", ["beta>=2"]), dist("beta", "2.0", ["gamma<1"]), dist("gamma", "1.0"))
    fixed = report(dist("alpha", "1.0", ["beta>=2"]), dist("beta", "2.0"), dist("gamma", "1.0"))
    same = report(dist("alpha", "1.0", ["beta>=3"]), dist("beta", "2.0"), dist("gamma", "1.0"))
    assert [f.subject for f in traded.findings if f.id == "pip.version-conflict"] == ["gamma"]
    assert new_errors(before, traded) == ["pip.version-conflict: gamma 1.0 does not satisfy beta"]
    assert new_errors(before, fixed) == [] and new_errors(before, same) == []
