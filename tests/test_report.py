"""`tbdoctor report`: the bug-report document from a real probe of a real venv."""

from __future__ import annotations

import json
import platform
import sys

import pytest

from conftest import clean_env, make_venv, tbdoctor


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    env = make_venv(tmp_path_factory.mktemp("report"))
    env.add_dist("torch", "2.13.0+cpu", requires=["numpy"], module_source="")
    env.add_dist("tensorboard", "2.21.0", requires=["protobuf>=3.19.6"], module_source="")
    env.add_dist("tb-nightly", "2.22.0a20261101", module_source="", top_level="tensorboard_nightly_stub")
    env.add_dist("tensorboardX", "2.6.5", module_source="")
    env.add_dist("numpy", "2.4.6", module_source="")
    env.add_dist("requests", "2.32.3", module_source="")
    return env


def test_markdown_report_has_what_maintainers_ask_for(env):
    proc = tbdoctor("report", "--python", str(env.python))
    assert proc.returncode == 0, proc.stderr
    doc = proc.stdout
    assert doc.startswith("# tbdoctor report: ") and " error" in doc.splitlines()[0]  # protobuf is missing
    for heading in ("## System", "## Python", "## Environment variables", "## Relevant packages", "## Findings",
                    "## Probes"):
        assert f"\n{heading}\n" in doc
    # collect_env's lines: OS, compilers, libc, Python version and platform, CPU.
    assert f"| OS | `{platform.platform()}` |" in doc
    for row in ("| GCC version |", "| CMake version |", "| Libc version |", "| CPU |", "| Memory |"):
        assert row in doc
    assert f"| Python version | `{platform.python_version()} (CPython, 64-bit)` |" in doc
    # The relevant packages (collect_env's patterns, diagnose_tensorboard's families), not the others.
    for row in ("| torch | 2.13.0+cpu |", "| tensorboard | 2.21.0 |", "| tb-nightly | 2.22.0a20261101 |",
                "| tensorboardX | 2.6.5 |", "| numpy | 2.4.6 |"):
        assert row in doc
    assert "requests" not in doc.split("## Relevant packages")[1].split("## Findings")[0]
    # Findings with their fixes, and the probes' status.
    assert "`pip.missing-requirement`" in doc and "pip install 'protobuf>=3.19.6'" in doc
    assert "| python | ok |" in doc and "| system | ok |" in doc
    assert "| Host | `<host>` |" in doc and "| User | `<user>` |" in doc


def test_json_report_and_output_file(env, tmp_path):
    out = tmp_path / "bug" / "report.md"
    proc = tbdoctor("report", "--python", str(env.python), "--output", str(out))
    assert proc.returncode == 0 and proc.stdout == ""
    assert f"wrote the report to {out}" in proc.stderr
    assert out.read_text().startswith("# tbdoctor report")

    proc = tbdoctor("report", "--python", str(env.python), "--json")
    data = json.loads(proc.stdout)
    assert data["schema"] == "tbdoctor.bugreport/1"
    assert data["target"]["python"] == str(env.python)
    titles = [s["title"] for s in data["sections"]]
    assert titles[:2] == ["System", "Python"] and "Environment variables" in titles
    assert {p["name"] for p in data["packages"]} >= {"torch", "tensorboard", "tensorboardX", "numpy"}
    assert data["summary"]["error"] >= 1 and "pip.missing-requirement" in {c["id"] for c in data["checks"]}
    assert {p["name"] for p in data["probes"]} >= {"python", "system"}  # python: the interpreter and its packages


def test_report_reuses_saved_facts_and_rejects_bad_input(env, tmp_path):
    saved = tmp_path / "facts.json"
    first = tbdoctor("check", "--python", str(env.python), "--save-facts", str(saved))
    assert first.returncode == 1
    proc = tbdoctor("report", "--facts", str(saved))
    assert proc.returncode == 0 and f"facts loaded from {saved}" in proc.stdout.replace("\\_", "_")
    bad = tbdoctor("report", "--facts", str(tmp_path / "missing.json"))
    assert bad.returncode == 2 and "cannot read" in bad.stderr and "Traceback" not in bad.stderr


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX home layout")
def test_home_is_shown_as_tilde(tmp_path):
    home = tmp_path / "home" / "someone"
    env = make_venv(home)
    proc = tbdoctor("report", "--python", str(env.python), env=clean_env(HOME=str(home)))
    assert proc.returncode == 0, proc.stderr
    assert str(home) not in proc.stdout and "`~/env/bin/python`" in proc.stdout
