"""Unit tests of the framework-build x GPU rules over hand-made facts (GPU facts
as the gpu probe records them; no GPU needed)."""

from __future__ import annotations

from conftest import dist, make_facts, packages_facts, python_facts
from test_rules_frameworks import one, torch_facts
from tbdoctor import rules
from tbdoctor.findings import ERROR, WARNING
from tbdoctor.rules import gpu_builds, pytorch

PY = "/envs/x/bin/python"


def gpu(driver="535.104.05", *cards):
    cards = cards or (("NVIDIA A100-SXM4-80GB", "8.0"),)
    return {"driver_version": driver, "gpus": [{"name": n, "compute_capability": cc} for n, cc in cards],
            "wsl": {"detected": False}}


def facts_with(t, g, *extra_dists, **more):
    pkgs = packages_facts(dist("torch", t.get("version") or "2.13.0"), *extra_dists)
    return make_facts(python=python_facts(), packages=pkgs, torch=t, gpu=g, **more)


def test_cpu_build_on_a_gpu_machine_installs_the_variant_the_driver_runs():
    facts = facts_with(torch_facts(), gpu("535.104.05"), dist("torchvision", "0.28.0+cpu"))
    f = one(gpu_builds.cpu_build_on_gpu(facts), "torch.cpu-build-on-gpu")
    assert f.status == ERROR and "NVIDIA A100-SXM4-80GB" in f.title and "cu126" in f.hint
    assert f.fixes[0].command == f"{PY} -m pip uninstall -y torch torchvision"
    assert f.fixes[1].command == (f"{PY} -m pip install --index-url https://download.pytorch.org/whl/cu126 "
                                  "torch==2.13.0 torchvision==0.28.0")


def test_cpu_build_on_a_cpu_machine_is_fine():
    facts = facts_with(torch_facts(), {"driver_version": None, "gpus": []})
    found = rules.evaluate(facts)
    assert not [f for f in found if f.section == "torch" and f.is_problem]
    assert one(found, "torch.version").title == "torch 2.13.0+cpu (CPU build)"


def test_driver_too_old_for_the_cuda_build_names_both_fixes():
    t = torch_facts(version="2.13.0+cu130", cuda="13.0", arch_list=["sm_75", "sm_80", "sm_90", "sm_120"],
                    cuda_error="The NVIDIA driver on your system is too old (found version 12020).")
    facts = facts_with(t, gpu("535.104.05"))
    found = rules.evaluate(facts)
    f = one(found, "torch.driver-too-old")
    assert "535.104.05" in f.title and "CUDA 13.0" in f.title and "needs driver >= 58" in f.title
    assert "Upgrade the NVIDIA driver" in f.hint and "cu126" in f.hint
    assert "whl/cu126" in f.fixes[1].command
    assert not [x for x in found if x.id == "torch.cuda-unavailable"]  # one cause, one finding


def test_gpu_missing_from_the_arch_list():
    t = torch_facts(version="2.13.0+cu130", cuda="13.0", cuda_available=True,
                    arch_list=["sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120", "compute_120"])
    facts = facts_with(t, gpu("580.95.05", ("Tesla V100-SXM2-32GB", "7.0")))
    f = one(gpu_builds.arch_unsupported(facts), "torch.arch-unsupported")
    assert f.title.startswith("Tesla V100-SXM2-32GB (sm_70) is not supported by torch 2.13.0+cu130, built for sm_75")
    assert "whl/cu126" in f.fixes[1].command
    ok = facts_with(t, gpu("580.95.05", ("NVIDIA H100 80GB HBM3", "9.0")))
    assert gpu_builds.arch_unsupported(ok) == []


def test_tensorflow_driver_and_visibility_and_jax_fallback():
    tf = {"installed": True, "import_ok": True, "version": "2.21.0",
          "build": {"is_cuda_build": True, "cuda_version": "12.5.1", "cudnn_version": "9"}, "gpus": []}
    old = facts_with(torch_facts(), gpu("470.239.06"), tensorflow=tf)
    assert "CUDA 12.5.1 needs driver >= 525" in one(gpu_builds.driver_too_old(old), "tensorflow.driver-too-old").title
    assert not [f for f in gpu_builds.frameworks_see_no_gpu(old) if f.id == "tensorflow.gpu-not-visible"]
    jax = {"installed": True, "import_ok": True, "version": "0.10.2", "backend": "cpu", "devices": ["cpu:0"]}
    new = facts_with(torch_facts(), gpu("580.95.05"), tensorflow=tf, jax=jax)
    found = gpu_builds.frameworks_see_no_gpu(new)
    assert one(found, "tensorflow.gpu-not-visible").fixes[0].packages == ("tensorflow[and-cuda]==2.21.0",)
    assert one(found, "jax.cpu-fallback").status == WARNING


def test_unknown_gpu_facts_keep_the_rules_silent():
    facts = facts_with(torch_facts(), None)
    assert [r(facts) for r in gpu_builds.RULES] == [[]] * len(gpu_builds.RULES)
    assert pytorch.cuda_unavailable(facts) == []


def test_tensorflow_gpus_it_cannot_use():
    tf = {"installed": True, "import_ok": True, "version": "2.21.0",
          "build": {"is_cuda_build": True, "cuda_version": "12.5.1"}, "gpus": []}
    blackwell = facts_with(torch_facts(), gpu("580.95.05", ("NVIDIA GeForce RTX 5090", "12.0")), tensorflow=tf)
    f = one(gpu_builds.tensorflow_gpu_support(blackwell), "tensorflow.arch-unsupported")
    assert "NVIDIA GeForce RTX 5090 (sm_120)" in f.title
    windows = facts_with(torch_facts(), gpu("581.15"), tensorflow=dict(tf, build={"is_cuda_build": False}))
    windows["python"]["platform"] = "win32"
    assert "2.10.0 was the last" in one(gpu_builds.tensorflow_gpu_support(windows), "tensorflow.windows-no-gpu").title
