"""Policies: the policy.* rules over hand-made facts, and the real CLI reading
tbdoctor.toml / pyproject.toml / --policy from disk (good and malformed)."""

from __future__ import annotations

import json

import pytest

from conftest import by_id, check_json, dist, ids, make_facts, make_venv, packages_facts, python_facts, tbdoctor
from tbdoctor.rules.policy import policy as policy_rule


def judged(require: dict, **facts) -> list:
    data = make_facts(**facts)
    data["policy"] = {"source": "tbdoctor.toml", "require": require}
    return policy_rule(data)


def errors(findings) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for f in findings:
        if f.status == "error":
            out.setdefault(f.id, []).append(f.title)
    return out


H100 = {"name": "NVIDIA H100 80GB HBM3", "uuid": "GPU-5f1c1d5e-6a7b-4c3d-9e8f-0a1b2c3d4e5f"}


def test_gpu_requirement_against_known_and_unknown_gpu_facts():
    assert errors(judged({"gpus": 2}, gpu={"driver_version": "550.54.15", "gpus": [H100, H100]})) == {}
    [title] = errors(judged({"gpus": 1}, gpu={"driver_version": None, "gpus": []}))["policy.gpus"]
    assert title == "Policy requires at least 1 GPU; 0 found"
    [title] = errors(judged({"gpus": 4}, gpu=None))["policy.gpus"]
    assert "4 GPUs" in title and "unknown" in title
    [title] = errors(judged({"gpus": 1}))["policy.gpus"]  # no gpu probe at all: unknown, not a crash
    assert "unknown" in title


def test_cuda_requirement_reads_the_torch_build_and_availability():
    pkgs = packages_facts(dist("torch", "2.4.1"))
    gpu_torch = {"version": "2.4.1", "cuda": "12.4", "cuda_available": True}
    assert errors(judged({"cuda": True}, packages=pkgs, torch=gpu_torch)) == {}
    [title] = errors(judged({"cuda": True}, packages=pkgs, torch=dict(gpu_torch, cuda_available=False)))["policy.cuda"]
    assert "sees no GPU" in title
    [title] = errors(judged({"cuda": True}, packages=pkgs, torch=dict(gpu_torch, cuda=None)))["policy.cuda"]
    assert "CPU build" in title
    assert errors(judged({"cuda": False}, packages=pkgs, torch=dict(gpu_torch, cuda=None))) == {}
    [title] = errors(judged({"cuda": False}, packages=pkgs, torch=gpu_torch))["policy.cuda"]
    assert "built with CUDA 12.4" in title
    # No torch probe: a +cpu tag is still a definite CPU build; a plain version is unknown.
    assert errors(judged({"cuda": False}, packages=packages_facts(dist("torch", "2.13.0+cpu")))) == {}
    [title] = errors(judged({"cuda": True}, packages=pkgs))["policy.cuda"]
    assert "unknown" in title
    [title] = errors(judged({"cuda": True}, packages=packages_facts(dist("numpy", "2.1.0"))))["policy.cuda"]
    assert "not installed" in title


def test_version_requirements_python_driver_torch_cuda():
    facts = {"python": python_facts(version="3.11.7"), "packages": packages_facts(dist("torch", "2.4.1+cu121")),
             "gpu": {"driver_version": "535.104.05", "gpus": [H100]}}
    assert errors(judged({"python": ">=3.10", "driver": ">=535", "torch_cuda": "==12.1.*"}, **facts)) == {}
    found = errors(judged({"python": ">=3.12", "driver": ">=550", "torch_cuda": ">=12.4"}, **facts))
    assert found == {"policy.python": ["Policy requires Python >=3.12; found 3.11.7"],
                     "policy.driver": ["Policy requires NVIDIA driver >=550; found 535.104.05"],
                     "policy.torch-cuda": ["Policy requires torch built with CUDA >=12.4; found 12.1"]}
    [title] = errors(judged({"driver": ">=535"}, gpu={"driver_version": None, "gpus": []}))["policy.driver"]
    assert "unknown" in title


def test_package_requirements_with_fixes():
    facts = {"python": python_facts(), "packages": packages_facts(dist("torch", "2.1.0"), dist("numpy", "2.1.0"))}
    findings = judged({"packages": {"torch": {"name": "torch", "spec": ">=2.3"},
                                    "tensorboardx": {"name": "tensorboardX", "spec": ""},
                                    "numpy": {"name": "numpy", "spec": ""}}}, **facts)
    assert findings[0].id == "policy.summary" and findings[0].title == "tbdoctor.toml: 2 of 3 requirements not met"
    pkg = by_id({"checks": [f.to_dict() for f in findings]}, "policy.package")
    assert [f["title"] for f in pkg] == ["Policy requires torch>=2.3; 2.1.0 is installed",
                                          "Policy requires tensorboardX; tensorboardX is not installed"]
    assert pkg[0]["fixes"][0]["command"] == "/envs/x/bin/python -m pip install 'torch>=2.3'"
    assert judged({}, **facts)[0].status == "ok"
    assert policy_rule(make_facts(**facts)) == []  # no policy, no findings


# --- the real CLI -------------------------------------------------------------


# The venv below holds bare metadata, no frameworks: probe only what doesn't import them.
ONLY = ("--only", "python", "pip", "gpu", "cuda")


@pytest.fixture(scope="module")
def venv(tmp_path_factory):
    env = make_venv(tmp_path_factory.mktemp("policy"))  # no pip: pip.installed is a warning
    env.add_dist("tensorboardX", "2.6.5", module_source="")
    env.add_dist("numpy", "2.1.0", module_source="")
    return env


def test_policy_requiring_a_gpu_fails_on_this_machine_and_passes_without_it(venv, tmp_path):
    (tmp_path / "tbdoctor.toml").write_text('[require]\ngpus = 1\npackages = { tensorboardX = "*" }\n')
    report, proc = check_json("--python", str(venv.python), *ONLY, cwd=tmp_path)
    assert proc.returncode == 1
    [gpus] = by_id(report, "policy.gpus")
    assert gpus["status"] == "error" and gpus["title"].startswith("Policy requires at least 1 GPU;")
    assert "policy: tbdoctor.toml" in report["notes"]
    console = tbdoctor("check", "--python", str(venv.python), *ONLY, cwd=tmp_path)
    assert console.returncode == 1 and "Policy requires at least 1 GPU" in console.stdout

    (tmp_path / "tbdoctor.toml").write_text('[require]\npackages = { tensorboardX = ">=2.6", numpy = "<3" }\n')
    report, proc = check_json("--python", str(venv.python), *ONLY, cwd=tmp_path)
    assert proc.returncode == 0, report["checks"]
    assert ids(report, "error") == set()
    assert by_id(report, "policy.summary")[0]["title"] == "tbdoctor.toml: all 2 requirements met"


def test_pyproject_table_strict_and_ignore(venv, tmp_path):
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n\n[tool.tbdoctor]\nstrict = true\n')
    report, proc = check_json("--python", str(venv.python), *ONLY, cwd=tmp_path)
    assert by_id(report, "pip.installed")[0]["status"] == "warning"
    assert proc.returncode == 1  # strict: the warning fails the run
    (tmp_path / "pyproject.toml").write_text('[tool.tbdoctor]\nstrict = true\nignore = ["pip.*"]\n')
    report, proc = check_json("--python", str(venv.python), *ONLY, cwd=tmp_path)
    assert proc.returncode == 0 and by_id(report, "pip.installed")[0]["status"] == "skipped"


def test_explicit_policy_file_and_no_policy_elsewhere(venv, tmp_path):
    policy = tmp_path / "gpu-policy.toml"
    policy.write_text("[require]\ngpus = 8\n")
    report, proc = check_json("--python", str(venv.python), *ONLY, "--policy", str(policy), cwd=tmp_path)
    assert proc.returncode == 1 and "8 GPUs" in by_id(report, "policy.gpus")[0]["title"]
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n')  # no [tool.tbdoctor]: no policy
    report, proc = check_json("--python", str(venv.python), *ONLY, cwd=tmp_path)
    assert proc.returncode == 0 and not [c for c in report["checks"] if c["section"] == "policy"]


@pytest.mark.parametrize("text, where, key", [
    ("[require]\ngpus 1\n", "tbdoctor.toml:2", "invalid TOML"),
    ("strict = true\n\n[require]\ngpu = 1\n", "tbdoctor.toml:4", "key 'require.gpu': unknown requirement"),
    ("colour = 'red'\n", "tbdoctor.toml:1", "key 'colour': unknown key"),
    ("[require]\ncuda = true\npackages = { torch = '>=2.3', numpy = '~=2' }\n", "tbdoctor.toml:3",
     "key 'require.packages.numpy': invalid version specifier '~=2'"),
    ("[require.packages]\ntorch = '>=2'\nnumpy = 2\n", "tbdoctor.toml:3", "key 'require.packages.numpy': expected a version"),
    ("require.gpus = 'one'\n", "tbdoctor.toml:1", "key 'require.gpus': expected a whole number"),
    ("[require]\ngpus = -1\n", "tbdoctor.toml:2", "key 'require.gpus'"),
    ("strict = 'yes'\n", "tbdoctor.toml:1", "key 'strict': expected true or false"),
    ("ignore = 'python.eol'\n", "tbdoctor.toml:1", "key 'ignore'"),
    ("[require]\npython = '3.10+'\n", "tbdoctor.toml:2", "key 'require.python': invalid version specifier"),
])
def test_malformed_policy_is_a_usage_error_naming_file_line_and_key(tmp_path, text, where, key):
    (tmp_path / "tbdoctor.toml").write_text(text)
    proc = tbdoctor("check", "--facts", str(_facts_file(tmp_path)), cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stdout == ""
    [line] = proc.stderr.splitlines()
    assert line.startswith(f"tbdoctor: error: policy {where}: ") and key in line, line


def test_malformed_pyproject_policy_names_the_dotted_key(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n\n[tool.tbdoctor.require]\ncuda = "yes"\n')
    proc = tbdoctor("check", "--facts", str(_facts_file(tmp_path)), cwd=tmp_path)
    assert proc.returncode == 2
    assert "policy pyproject.toml:5: key 'tool.tbdoctor.require.cuda': expected true" in proc.stderr
    missing = tbdoctor("check", "--facts", str(_facts_file(tmp_path)), "--policy", str(tmp_path / "nope.toml"))
    assert missing.returncode == 2 and "nope.toml: cannot read" in missing.stderr


def _facts_file(tmp_path):
    path = tmp_path / "facts.json"
    path.write_text(json.dumps(make_facts(python=python_facts(), packages=packages_facts())))
    return path
