"""Unit tests of the python.* and pip.* rules over hand-made facts."""

from conftest import dist, make_facts, packages_facts, python_facts
from tbdoctor import rules
from tbdoctor.findings import ERROR, INFO, OK, WARNING
from tbdoctor.rules import pip, python


def one(findings, finding_id):
    [f] = [f for f in findings if f.id == finding_id]
    return f


def test_eol_uses_the_snapshot_date():
    facts = make_facts(python=python_facts(version_info=[3, 10, 14], version="3.10.14"))
    assert one(python.end_of_life(facts), "python.eol").status == WARNING
    facts["collected_at"] = "2026-06-01"
    assert one(python.end_of_life(facts), "python.eol").status == INFO
    facts["collected_at"] = "2025-01-01"
    assert one(python.end_of_life(facts), "python.eol").status == OK
    unknown = make_facts(python=python_facts(version_info=[3, 99, 0]))
    assert "unknown" in one(python.end_of_life(unknown), "python.eol").title


def test_failed_probe_means_unknown_not_false():
    facts = make_facts(python=None, packages=None)
    facts["probes"]["python"] = {"status": "failed", "section": "python", "error": "timed out after 5 s"}
    found = rules.evaluate(facts)
    assert [f.id for f in found if f.is_problem] == ["probe.python"]
    assert one(found, "probe.python").title == "The python probe timed out after 5 s"


def test_32_bit_and_externally_managed():
    facts = make_facts(python=python_facts(bits=32, externally_managed="/usr/lib/python3.11/EXTERNALLY-MANAGED"))
    assert one(python.bitness(facts), "python.32-bit").status == ERROR
    assert one(python.externally_managed(facts), "python.externally-managed").status == INFO


def test_user_site_shadowing_names_the_packages():
    user = "/home/u/.local/lib/python3.11/site-packages"
    facts = make_facts(
        python=python_facts(user_site={"enabled": True, "path": user, "exists": True, "on_sys_path": True}),
        packages=packages_facts(dist("numpy", "1.26.4", location=user), dist("numpy", "2.4.6"), dist("rich", "13.0")))
    f = one(python.user_site(facts), "python.user-site")
    assert f.status == WARNING and "numpy 1.26.4" in f.title
    assert f.fixes[0].command == "export PYTHONNOUSERSITE=1"


def test_markers_and_extras_are_respected():
    facts = make_facts(python=python_facts(), packages=packages_facts(
        dist("torch", "2.13.0", requires=["nvidia-cudnn-cu12==9.1; platform_system == 'Windows'",
                                          "optree>=0.13; extra == 'optree'", "filelock"]),
        dist("filelock", "3.0")))
    assert one(pip.consistency(facts), "pip.consistency").status == OK


def test_conflict_fix_intersects_every_requirer():
    facts = make_facts(python=python_facts(), packages=packages_facts(
        dist("tensorboard", "2.21.0", requires=["numpy>=1.12.0", "protobuf!=4.24.0,>=3.19.6"]),
        dist("tensorflow", "2.21.0", requires=["protobuf<8,>=5.28.0", "numpy>=1.26"]),
        dist("protobuf", "3.20.3"), dist("numpy", "2.4.6")))
    f = one(pip.consistency(facts), "pip.version-conflict")
    assert "tensorflow 2.21.0 requires protobuf<8,>=5.28.0" in f.detail
    assert f.fixes[0].packages == ("protobuf!=4.24.0,<8,>=3.19.6,>=5.28.0",)
    assert f.fixes[0].command == "/envs/x/bin/python -m pip install 'protobuf!=4.24.0,<8,>=3.19.6,>=5.28.0'"


def test_uv_environment_without_pip_uses_uv_pip():
    facts = make_facts(python=python_facts(env_kind="uv", pip={"installed": False}),
                       packages=packages_facts(dist("a", "1", requires=["b"])))
    assert one(pip.pip_present(facts), "pip.installed").status == INFO
    fix = one(pip.consistency(facts), "pip.missing-requirement").fixes[0]
    assert fix.command == "uv pip install --python /envs/x/bin/python b"


def test_duplicate_in_two_locations_is_a_warning():
    facts = make_facts(python=python_facts(), packages=packages_facts(
        dist("torch", "2.13.0", location="/home/u/.local/lib/python3.11/site-packages"), dist("torch", "2.9.1")))
    f = one(pip.duplicates(facts), "pip.duplicate-distribution")
    assert f.status == WARNING and f.fixes[0].kind == "pip-uninstall"


def test_a_crashing_rule_becomes_a_finding():
    def broken(facts):
        raise KeyError("version")
    [f] = rules.evaluate(make_facts(), rules=(broken,))
    assert f.id == "internal.rule-crashed" and "KeyError" in f.title and "Traceback" in f.verbose_detail


def test_ignore_patterns_mark_skipped():
    facts = make_facts(python=python_facts(environ={"PYTHONPATH": "/x"}))
    found = rules.select(rules.evaluate(facts), ignore=["python.py*"])
    assert one(found, "python.pythonpath").status == "skipped"
