"""Where the knowledge base ends: its date in every report and in --version, and versions
newer than anything it knows reported as such (rules over hand-made facts; the driver
end to end with a recorded nvidia-smi edited to a driver newer than the knowledge base)."""

from __future__ import annotations

import sys

import pytest

from conftest import (by_id, check_json, cuda_facts, cuda_toolkit, dist, fake_gpu_env, gpu_device, gpu_facts, ids,
                      make_facts, packages_facts, python_facts, tbdoctor)
from test_rules_frameworks import one, torch_facts
from tbdoctor import compat
from tbdoctor.rules import gpu_builds, knowledge

NEWER = f"newer than tbdoctor's knowledge of {compat.kb_date()}"


def _facts(torch="2.13.0", tf="2.21.0", tb="2.21.0", kit="13.0", driver="580.95.05"):
    return make_facts(
        python=python_facts(), packages=packages_facts(dist("torch", torch)),
        torch={"installed": True, "import_ok": True, "version": torch, "dist_version": torch},
        tensorflow={"installed": True, "distribution": "tensorflow-cpu", "dist_version": tf},
        tensorboard={"installed": True, "distribution": "tensorboard", "version": tb},
        cuda=cuda_facts([cuda_toolkit(kit, f"{kit}.88")]), gpu=gpu_facts([gpu_device()], driver=driver))


def test_known_versions_are_not_flagged():
    assert knowledge.newer_than_knowledge(_facts()) == []
    assert knowledge.newer_than_knowledge(_facts(torch="2.15.0", tb="2.21.0a20251023", kit="13.5", driver="610.43.02")) \
        == []


@pytest.mark.parametrize("change, finding_id, text", [
    ({"torch": "2.16.0+cu132"}, "torch.newer-than-knowledge", "torch 2.16.0+cu132 is "),
    ({"tf": "2.22.0"}, "tensorflow.newer-than-knowledge", "tensorflow-cpu 2.22.0 is "),
    ({"tb": "2.22.1"}, "tensorboard.newer-than-knowledge", "tensorboard 2.22.1 is "),
    ({"kit": "13.6"}, "cuda.newer-than-knowledge", "CUDA toolkit 13.6 is "),
    ({"driver": "615.20.03"}, "gpu.driver-newer-than-knowledge", "NVIDIA driver 615.20.03 is "),
])
def test_newer_versions_are_said_to_be_newer(change, finding_id, text):
    [f] = knowledge.newer_than_knowledge(_facts(**change))
    assert f.id == finding_id and f.status == "info" and f.title == text + NEWER


def test_cpu_torch_newer_than_knowledge_is_not_told_to_upgrade_the_driver():
    """No torch 2.16 row exists: before, "no CUDA build is known to run on driver 580: upgrade the driver"."""
    facts = make_facts(python=python_facts(), packages=packages_facts(dist("torch", "2.16.0+cpu")),
                       torch=torch_facts(version="2.16.0+cpu"),
                       gpu={"driver_version": "580.95.05", "gpus": [{"name": "NVIDIA H200", "compute_capability": "9.0"}],
                            "wsl": {"detected": False}})
    f = one(gpu_builds.cpu_build_on_gpu(facts), "torch.cpu-build-on-gpu")
    assert NEWER in f.hint and "upgrade the driver" not in f.hint


@pytest.mark.skipif(sys.platform == "win32", reason="fake nvidia-smi is a POSIX shell script")
def test_driver_newer_than_knowledge_end_to_end_and_the_date_in_every_format(tmp_path):
    facts_file = tmp_path / "facts.json"
    report, _ = check_json("--python", sys.executable, "--only", "gpu", "cuda", "--save-facts", str(facts_file),
                           env=fake_gpu_env(tmp_path, smi="h200-615"))
    [f] = by_id(report, "gpu.driver-newer-than-knowledge")
    assert f["title"] == f"NVIDIA driver 615.20.03 is {NEWER}" and "610.43.02" in f["detail"]
    assert report["knowledge_base"] == {"date": compat.kb_date()}
    known, _ = check_json("--python", sys.executable, "--only", "gpu", env=fake_gpu_env(tmp_path, smi="h200-580"))
    assert "gpu.driver-newer-than-knowledge" not in ids(known)
    console = tbdoctor("check", "--facts", str(facts_file))
    assert f"(knowledge base of {compat.kb_date()}) · target" in console.stdout
    assert f"knowledge base of {compat.kb_date()}" in tbdoctor("check", "--facts", str(facts_file),
                                                              "--format", "markdown").stdout
    assert f'name="knowledge_base" value="{compat.kb_date()}"' in tbdoctor("check", "--facts", str(facts_file),
                                                                         "--format", "junit").stdout
    assert f"knowledge base of {compat.kb_date()}" in tbdoctor("report", "--facts", str(facts_file)).stdout
