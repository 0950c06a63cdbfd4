"""pip's resolver checks every install command check and fix show (tbdoctor/solve.py), on real venvs.

These tests read the package index the machine's pip configuration names (as a user's check does).
"""

from __future__ import annotations

import os
import re
import subprocess

import pytest

from conftest import assert_installable, by_id, cached_venv, check_json, clean_env, layered_venv, tbdoctor


@pytest.fixture(scope="module")
def tbx26(tmp_path_factory):
    """tensorboard 2.21 (protobuf>=6.31.1) with tensorboardX 2.6 (protobuf<4) layered over it."""
    base = cached_venv(tmp_path_factory, "tb221", "tensorboard==2.21.0")
    env = layered_venv(tmp_path_factory.mktemp("tbx26"), base)
    subprocess.run([str(env.python), "-m", "pip", "install", "-q", "--no-deps", "tensorboardX==2.6"],
                   check=True, capture_output=True, text=True, timeout=600)
    return env


_OTHERS = ("--ignore", "tensorboardx.numpy-scalar", "numpy.protobuf-too-new")  # they upgrade tensorboardX


def test_no_printed_install_has_an_empty_specifier_and_each_one_dry_runs(tbx26):
    """Observation 4: was `pip install 'protobuf<4,<8.0.0,>=3.8.0,>=6.31.1'`."""
    report, _ = check_json("--python", str(tbx26.python))
    conflict = by_id(report, "pip.version-conflict")[0]
    command = conflict["fixes"][0]["command"]
    assert "<4" not in command and ">=6.31.1" in command  # tensorboardX's limit goes with the upgrade
    assert "confirmed" in " ".join(report["notes"])
    assert assert_installable(report) >= 2


def test_a_conflict_between_requirers_is_solved_by_moving_one_requirer(tbx26):
    report, _ = check_json("--python", str(tbx26.python), *_OTHERS)
    conflict = by_id(report, "pip.version-conflict")[0]
    assert len(conflict["fixes"]) == 1
    packages = conflict["fixes"][0]["packages"]
    assert packages[0].startswith("tensorboardX==2.6.") and packages[0] != "tensorboardX==2.6"
    assert "tensorboardX 2.6 requires protobuf<4" in conflict["hint"] and "upgrade tensorboardX" in conflict["hint"]
    assert assert_installable(report) >= 1


def test_fix_plans_what_pip_accepts(tbx26, tmp_path):
    proc = tbdoctor("fix", "--dry-run", "--python", str(tbx26.python), *_OTHERS,
                    env=clean_env(TBDOCTOR_STATE_DIR=str(tmp_path)))
    assert proc.returncode == 1, proc.stderr
    assert "<4" not in proc.stdout and "Refused" not in proc.stdout
    assert re.search(r"upgrade +tensorboardX +2\.6 +2\.6\.", proc.stdout), proc.stdout


def test_an_unreachable_index_says_not_verified_quickly(tbx26):
    env = clean_env(PIP_CONFIG_FILE=os.devnull, PIP_FIND_LINKS="", PIP_INDEX_URL="http://127.0.0.1:9/simple")
    report, proc = check_json("--python", str(tbx26.python), env=env)
    conflict = by_id(report, "pip.version-conflict")[0]
    assert conflict["fixes"] and "Not verified by pip: the package index could not be reached" in conflict["hint"]


def test_quick_skips_the_resolver(tbx26):
    report, _ = check_json("--python", str(tbx26.python), "--quick", env=clean_env(PIP_INDEX_URL="http://127.0.0.1:9/x"))
    conflict = by_id(report, "pip.version-conflict")[0]
    assert "Not verified by pip: skipped by --quick" in conflict["hint"]


def test_numpy2_abi_break_is_fixed_with_the_smallest_sufficient_upgrade(tmp_path_factory):
    """Observation 9: pandas 1.5.3 under NumPy 2 was upgraded to the newest pandas (3.x);
    2.2.2 is the first pandas built for NumPy 2, so the 2.2 series suffices."""
    env = cached_venv(tmp_path_factory, "pandas153-numpy2", "pandas==1.5.3", "numpy==2.2.6")
    report, _ = check_json("--python", str(env.python), "--only", "numpy", "pip")
    abi = [c for c in by_id(report, "numpy.abi-mismatch") if "pandas" in c["title"]][0]
    assert abi["fixes"][0]["packages"] == ["pandas<2.3,>=2.2.2"]  # not the newest pandas (3.x)
    assert "confirmed" in " ".join(report["notes"]) and assert_installable(report) == 1
