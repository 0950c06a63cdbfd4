"""Unit tests of the fix planner and of the dry-run impact over hand-made findings and facts."""

from conftest import dist, make_facts, packages_facts, python_facts
from tbdoctor import impact, plan
from tbdoctor.findings import ERROR, OK, WARNING, Finding, Fix
from tbdoctor.rules.common import manual, pip_install, pip_uninstall

FACTS = make_facts(python=python_facts())
CU126 = "https://download.pytorch.org/whl/cu126"


def family_findings():
    """What the framework rules emit: a duplicate family, a CPU torch on a GPU machine,
    two conflicts on one project, an env step, and a same-folder duplicate."""
    return [
        Finding("tensorboard.duplicate-install", ERROR, "tensorboard and tb-nightly both installed",
                fixes=(pip_uninstall(FACTS, "tensorboard", "tb-nightly"), pip_install(FACTS, "tensorboard==2.21.0"))),
        Finding("torch.cpu-build-on-gpu", ERROR, "CPU build of torch on a GPU machine",
                fixes=(pip_install(FACTS, "torch==2.13.0", options=("--index-url", CU126, "--force-reinstall")),)),
        Finding("pip.version-conflict", ERROR, "protobuf 3.19 does not satisfy tensorboard",
                fixes=(pip_install(FACTS, "protobuf>=3.20"),)),
        Finding("numpy.protobuf-too-new", WARNING, "protobuf too new",
                fixes=(pip_install(FACTS, "protobuf<6"),)),
        Finding("python.pythonpath", WARNING, "PYTHONPATH is set", fixes=(Fix("env", "unset PYTHONPATH"),)),
        Finding("pip.duplicate-distribution", ERROR, "numpy twice in one folder",
                fixes=(manual("rm -r /x/numpy-1.0.dist-info"),
                       pip_install(FACTS, "numpy==2.0", options=("--force-reinstall", "--no-deps")))),
        Finding("pip.consistency", OK, "fine", fixes=(pip_install(FACTS, "never"),)),
        Finding("tensorflow.duplicate-install", ERROR, "tb-nightly again via another family",
                fixes=(pip_uninstall(FACTS, "tb_nightly"),)),
    ]


def test_family_pair_uninstalls_first_then_installs_and_merges():
    p = plan.build(family_findings())
    kinds = [s.kind for s in p.steps]
    assert kinds == ["pip-uninstall", "pip-install", "pip-install"]
    uninstall, torch, rest = p.steps
    assert uninstall.packages == ("tensorboard", "tb-nightly")  # tb_nightly deduplicated by canonical name
    assert {fid for fid, _ in uninstall.reasons} == {"tensorboard.duplicate-install", "tensorflow.duplicate-install"}
    assert torch.options == ("--index-url", CU126, "--force-reinstall")  # the index group goes first
    assert torch.packages == ("torch==2.13.0",)
    assert rest.options == ()
    assert rest.packages == ("tensorboard==2.21.0", "protobuf<6,>=3.20")  # one merged requirement
    assert p.uninstalls == {"tensorboard", "tb-nightly"}


def test_manual_and_env_steps_are_shown_never_run_and_what_follows_them_waits():
    p = plan.build(family_findings())
    manual_kinds = [(m.kind, m.finding) for m in p.manual]
    assert ("env", "python.pythonpath") in manual_kinds
    assert ("manual", "pip.duplicate-distribution") in manual_kinds
    # The reinstall after the manual removal is not run: it depends on the removal.
    assert ("pip-install", "pip.duplicate-distribution") in manual_kinds
    assert not any("numpy" in r for s in p.steps for r in s.packages)
    assert not any("never" in r for s in p.steps for r in s.packages)  # ok findings are not fixed


def test_only_selects_findings_by_id_pattern():
    p = plan.build(family_findings(), only=["pip.*"])
    assert [s.packages for s in p.steps] == [("protobuf>=3.20",)]
    assert [m.finding for m in p.manual] == ["pip.duplicate-distribution", "pip.duplicate-distribution"]


def test_a_project_asked_for_in_two_groups_is_installed_once_from_the_index_group():
    findings = [Finding("pip.version-conflict", ERROR, "torch too old", fixes=(pip_install(FACTS, "torch>=2.5"),)),
                Finding("torch.cpu-build-on-gpu", ERROR, "cpu torch",
                        fixes=(pip_install(FACTS, "torch", options=("--index-url", CU126)),))]
    [step] = plan.build(findings).steps
    assert step.options == ("--index-url", CU126)
    assert step.packages == ("torch>=2.5",)


def test_options_of_uv_commands_drop_the_target_selector():
    facts = make_facts(python=python_facts(env_kind="uv", pip={"installed": False}))
    fix = pip_install(facts, "beta>=2", options=("--find-links", "/wheels"))
    assert fix.command.startswith("uv pip install --python")
    assert plan.command_options(fix) == ("--find-links", "/wheels")
    assert fix.to_dict()["options"] == ["--find-links", "/wheels"]
    assert plan.command_options(pip_uninstall(FACTS, "x")) == ()


def _facts(*dists):
    return make_facts(python=python_facts(), packages=packages_facts(*dists))


def test_impact_of_a_family_fix_is_a_removal_and_a_reinstall_without_breakage():
    facts = _facts(dist("tensorboard", "2.21.0"), dist("tb-nightly", "2.22.0a1"),
                   dist("tensorboardX", "2.6.5", requires=["tensorboard>=2.16"]))
    p = plan.build(family_findings()[:1])
    got = impact.assess(facts, p, resolved=[])  # pip: tensorboard==2.21.0 already satisfied
    assert {(c.action, c.name) for c in got.changes} == {("remove", "tb-nightly"), ("reinstall", "tensorboard")}
    assert got.breaks == []


def test_impact_names_the_package_a_plan_would_break():
    facts = _facts(dist("alpha", "1.0", requires=["gamma>=2"]), dist("gamma", "2.0"),
                   dist("tensorboardX", "2.6.5", requires=["protobuf>=3.20"]), dist("protobuf", "4.25.0"))
    p = plan.build([Finding("x.dup", WARNING, "gamma twice", fixes=(pip_uninstall(facts, "gamma"),)),
                    Finding("x.old", ERROR, "protobuf", fixes=(pip_install(facts, "protobuf<4"),))])
    got = impact.assess(facts, p, resolved=[{"name": "protobuf", "version": "3.19.0", "requires": []}])
    assert ("downgrade", "protobuf", "4.25.0", "3.19.0") in [(c.action, c.name, c.old, c.new) for c in got.changes]
    assert got.breaks == ["alpha 1.0 requires gamma>=2, which would be removed",
                          "tensorboardX 2.6.5 requires protobuf>=3.20, but protobuf 3.19.0 would be installed"]


def test_impact_ignores_problems_that_exist_already():
    facts = _facts(dist("alpha", "1.0", requires=["beta>=2", "zeta"]), dist("beta", "1.0"))
    p = plan.build([Finding("pip.version-conflict", ERROR, "beta", fixes=(pip_install(facts, "beta>=2"),))])
    got = impact.assess(facts, p, resolved=[{"name": "beta", "version": "2.0", "requires": []}])
    assert [(c.action, c.new) for c in got.changes] == [("upgrade", "2.0")]
    assert got.breaks == []  # zeta was missing before too


def test_torch_on_a_gpu_machine_comes_from_the_cuda_variant_index_unless_the_fix_names_one():
    source = ("--index-url", CU126)
    findings = [Finding("pip.version-conflict", ERROR, "torch too old for torchvision",
                        fixes=(pip_install(FACTS, "torch>=2.5", "numpy<3"),)),
                Finding("torch.cpu-build-on-gpu", ERROR, "cpu torch", fixes=(pip_install(
                    FACTS, "torchaudio", options=("--index-url", "https://download.pytorch.org/whl/cu118")),))]
    steps = plan.build(findings, torch_source=source).steps
    assert [(s.options, s.packages) for s in steps] == [
        (source, ("torch>=2.5",)),
        (("--index-url", "https://download.pytorch.org/whl/cu118"), ("torchaudio",)),
        ((), ("numpy<3",))]


def test_removing_the_only_pip_is_a_breakage_but_a_shadowing_copy_may_go():
    dup = Finding("pip.duplicate-distribution", WARNING, "pip twice", fixes=(pip_uninstall(FACTS, "pip"),))
    base = "/base/lib/python3.11/site-packages"
    two = _facts(dist("pip", "23.2.1"), dist("pip", "24.0", location=base))
    assert impact.assess(two, plan.build([dup]), []).breaks == []
    one = _facts(dist("pip", "23.2.1"))
    assert impact.assess(one, plan.build([dup]), []).breaks == [
        "pip 23.2.1 would be removed, and with it what applies the plan and rolls it back"]
