"""`pip install .` (not editable) gives a working `tbdoctor` with its bundled data."""

import json
import subprocess

from conftest import REPO, clean_env, make_venv


def test_wheel_install_runs_check_against_another_venv(tmp_path):
    tool = make_venv(tmp_path, "tool", with_pip=True)
    target = make_venv(tmp_path, "target")
    subprocess.run([str(tool.python), "-m", "pip", "install", "-q", str(REPO)],
                   check=True, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    tbdoctor = tool.python.parent / "tbdoctor"
    proc = subprocess.run([str(tbdoctor), "check", "--json", "--python", str(target.path)],
                          capture_output=True, text=True, env=clean_env(), timeout=300, cwd=tmp_path)
    report = json.loads(proc.stdout)
    assert report["schema"] == "tbdoctor.report/1"
    assert report["target"]["python"] == str(target.python)
    assert not [c for c in report["checks"] if c["id"].startswith("internal.")], report["checks"]
    assert any(c["id"] == "python.eol" for c in report["checks"])  # read from the bundled checks/
    schema = subprocess.run([str(tbdoctor), "schema", "facts"], capture_output=True, text=True, timeout=60)
    assert json.loads(schema.stdout)["title"] == "tbdoctor.facts/1"  # the schemas are in the wheel
    version = subprocess.run([str(tool.python), "-m", "tbdoctor", "--version"],
                             capture_output=True, text=True, timeout=60)
    assert version.stdout.startswith("tbdoctor ")
