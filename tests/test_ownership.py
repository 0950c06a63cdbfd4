"""Files owned by dpkg or conda are never removed or overwritten by tbdoctor's advice (real interpreters)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conftest import by_id, check_json, make_venv

_DPKG_LIST = Path("/var/lib/dpkg/info/python3-cryptography.list")


def _commands(report: dict) -> list[str]:
    return [fix["command"] for check in report["checks"] for fix in check.get("fixes", ())]


@pytest.mark.skipif(not (_DPKG_LIST.exists() and shutil.which("python3") and Path("/usr/bin/python3").exists()),
                    reason="needs Debian's python3-cryptography (apt-get install python3-cryptography)")
def test_debian_system_python_gets_no_rm_of_dpkg_files_and_no_pip():
    """Observation 6: python3-cryptography's .dist-info and .egg-info (both dpkg's) were called a
    duplicate, with `rm -r .../cryptography.egg-info` and pip --force-reinstall into a PEP 668 python."""
    owned = [ln.strip() for ln in _DPKG_LIST.read_text().splitlines() if ln.strip().endswith((".dist-info", ".egg-info"))]
    assert len(owned) >= 2  # the case this test is about: one package, two metadata kinds
    report, _ = check_json("--python", "/usr/bin/python3", "--only", "pip", "python")
    assert not [c for c in by_id(report, "pip.duplicate-distribution") if "cryptography" in c["title"]]
    assert report["facts"]["packages"]["owners"][owned[0]] == {"manager": "dpkg", "package": "python3-cryptography"}
    commands = _commands(report)
    assert not [c for c in commands if any(path in c for path in owned)]
    if report["facts"]["python"].get("externally_managed"):
        assert not [c for c in commands if " -m pip " in c]


def test_conda_owned_metadata_is_not_a_duplicate_and_gets_conda_commands(tmp_path):
    env = make_venv(tmp_path)
    prefix = env.path
    site = env.site.relative_to(prefix)
    env.add_dist("beta", "1.0")
    egg = env.site / "beta.egg-info"
    egg.mkdir()
    (egg / "PKG-INFO").write_text("Metadata-Version: 1.1\nName: beta\nVersion: 1.0\n")
    env.add_dist("alpha", "1.0", requires=["beta>=2"])
    (prefix / "conda-meta").mkdir()
    (prefix / "conda-meta" / "beta-1.0-0.json").write_text(json.dumps({"name": "beta", "version": "1.0", "files": [
        f"{site}/beta-1.0.dist-info/METADATA", f"{site}/beta.egg-info/PKG-INFO"]}))
    report, _ = check_json("--python", str(env.python), "--only", "pip", "--quick")
    assert not by_id(report, "pip.duplicate-distribution")
    conflict = by_id(report, "pip.version-conflict")[0]
    commands = [f["command"] for f in conflict["fixes"]]
    assert commands == [f"conda install -p {prefix} 'beta>=2'"], commands
    assert "conda package beta" in conflict["hint"]
