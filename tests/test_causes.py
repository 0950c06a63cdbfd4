"""One cause, one fix (tbdoctor/rules/causes.py): followers of a duplicated family carry no fix of their own."""

from __future__ import annotations

import re
import subprocess

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from conftest import (assert_installable, by_id, cached_venv, check_json, clean_env, dist, layered_venv, make_facts,
                      packages_facts, python_facts, tbdoctor)
from tbdoctor import plan as plan_mod, tables
from tbdoctor.findings import ERROR, Finding
from tbdoctor.rules import causes, evaluate
from tbdoctor.rules.common import pip_install


def _touched(finding: dict) -> set[str]:
    return {canonicalize_name(Requirement(p).name) for fix in finding["fixes"]
            if fix["kind"] in ("pip-install", "pip-uninstall") for p in fix.get("packages", ())}


@pytest.fixture(scope="module")
def tb_and_nightly(tmp_path_factory):
    """tensorboard 2.19 and tb-nightly in one venv, with setuptools >= 82 (both import pkg_resources)."""
    base = cached_venv(tmp_path_factory, "tb219-setuptools82", "tensorboard==2.19.0", "setuptools>=82")
    env = layered_venv(tmp_path_factory.mktemp("tbnightly"), base)
    subprocess.run([str(env.python), "-m", "pip", "install", "-q", "--no-deps", "tb-nightly==2.21.0a20251023"],
                   check=True, capture_output=True, text=True, timeout=600)
    return env


def test_a_duplicated_family_gets_one_coherent_fix(tb_and_nightly, tmp_path):
    """Observation 5: three fixes at once (setuptools<82, uninstall both, upgrade tb-nightly)."""
    report, _ = check_json("--python", str(tb_and_nightly.python))
    family = {"tensorboard", "tb-nightly"}
    fixing = [c for c in report["checks"] if _touched(c) & family]
    assert [c["id"] for c in fixing] == ["tensorboard.duplicate-install"]
    followers = by_id(report, "tensorboard.pkg-resources-missing")
    assert followers and all("Follows from tensorboard.duplicate-install" in c["hint"] for c in followers)
    root = fixing[0]
    assert root["fixes"][-1]["packages"] == ["tensorboard>=2.21"]  # what the followers asked of the kept member
    assert assert_installable(report) >= 1
    proc = tbdoctor("fix", "--dry-run", "--python", str(tb_and_nightly.python), "--only", "tensorboard.*",
                    env=clean_env(TBDOCTOR_STATE_DIR=str(tmp_path)))
    assert proc.returncode == 1 and "Refused" not in proc.stdout, proc.stdout
    assert "setuptools" not in proc.stdout
    assert re.search(r"remove +tb-nightly", proc.stdout) and re.search(r"upgrade +tensorboard +2\.19\.0 +2\.21", proc.stdout)


@pytest.mark.parametrize("family", tables.load("families")["family"], ids=lambda f: f["module"])
def test_no_plan_installs_two_members_of_any_family(family):
    first, second = family["members"][:2]
    facts = make_facts(python=python_facts(), packages=packages_facts(dist(first, "1.0"), dist(second, "2.0")))
    follower = Finding("x.follower", ERROR, f"{second} needs an upgrade", fixes=(pip_install(facts, f"{second}>2.0"),))
    other = Finding("x.other", ERROR, "unrelated", fixes=(pip_install(facts, "unrelated>=1"),))
    found = causes.group(facts, evaluate(facts) + [follower, other])
    plan = plan_mod.build(found)
    members = {canonicalize_name(m) for m in family["members"]}
    assert len({plan_mod.project_key(r) for r in plan.installs} & members) == 1
    assert plan.uninstalls >= {canonicalize_name(first), canonicalize_name(second)}
    assert "unrelated>=1" in plan.installs
    assert next(f for f in found if f.id == "x.follower").fixes == ()


def test_an_import_failing_on_a_missing_dependency_follows_from_it(env):
    """The import failure says which missing distribution causes it and carries no fix of its own."""
    env.add_dist("tensorboardX", "9.0", requires=["absl-py"], module_source="import absl\n")
    report, _ = check_json("--python", str(env.python), "--only", "pip", "tensorboardx")
    [missing] = by_id(report, "pip.missing-requirement")
    assert missing["fixes"][0]["packages"] == ["absl-py"]
    [failed] = by_id(report, "tensorboardx.import-failed")
    assert failed["hint"].startswith("Follows from pip.missing-requirement (absl-py is required but not installed)")
    assert failed["fixes"] == []
