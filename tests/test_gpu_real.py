"""The real-GPU tier (marker ``gpu``): the CUDA branches nothing else exercises, on a machine
with an NVIDIA GPU. Skipped (not failed) where NVML lists no GPU. ``benchmarks/gpu_smoke.sh``
prepares an environment and runs this file plus ``check --json`` and ``verify --json``.

The interpreter under test is ``$TBDOCTOR_GPU_PYTHON`` (a CUDA build of torch with tensorboardX),
else the one running pytest; a CPU-only torch there skips the torch tests with that reason.
"""

import json
import os
import re
import subprocess
import sys

import pytest

from conftest import by_id, check_json, clean_env, tbdoctor


def _nvml_gpus() -> int:
    try:
        import pynvml
        pynvml.nvmlInit()
        try:
            return pynvml.nvmlDeviceGetCount()
        finally:
            pynvml.nvmlShutdown()
    except Exception:  # no library, no driver, no GPU: all mean "not a GPU machine"
        return 0


pytestmark = [pytest.mark.gpu, pytest.mark.skipif(_nvml_gpus() == 0, reason="no NVIDIA GPU answers through NVML")]
PYTHON = os.environ.get("TBDOCTOR_GPU_PYTHON") or sys.executable


@pytest.fixture(scope="module")
def torch_build():
    """torch.version.cuda of the interpreter under test; skips without a CUDA build."""
    proc = subprocess.run([PYTHON, "-c", "import torch; print(torch.__version__, torch.version.cuda)"],
                          capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        pytest.skip(f"{PYTHON} cannot import torch: {proc.stderr.strip().splitlines()[-1:]}")
    version, cuda = proc.stdout.split()
    if cuda == "None":
        pytest.skip(f"torch {version} in {PYTHON} is a CPU-only build")
    return version, cuda


def _smi_names() -> list[str]:
    proc = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=60)
    return re.findall(r"^GPU \d+: (.+?) \(UUID", proc.stdout, re.M)


def test_real_nvml_through_the_injectable_layer():
    import pynvml

    from tbdoctor.gpuinfo import nvml
    facts = nvml.query(pynvml)
    assert facts["status"] == "ok", facts
    assert [g["name"] for g in facts["gpus"]] == _smi_names()
    for gpu in facts["gpus"]:
        assert re.fullmatch(r"\d+\.\d+", gpu["compute_capability"]) and gpu["memory_total_mib"] > 0
        assert gpu["compute_mode"] in ("default", "exclusive-process", "prohibited")
        assert isinstance(gpu["processes"], list) and gpu["pcie"] is not None


def test_the_nvidia_smi_fallback_reads_this_driver():
    """The query fields (node health included) are ones this driver accepts and the parser reads."""
    from tbdoctor import procs
    from tbdoctor.gpuinfo import nvidia_smi
    facts = nvidia_smi.probe(procs.run, 60.0)
    assert facts["status"] == "ok" and facts["method"] == "query", facts
    assert [g["name"] for g in facts["gpus"]] == _smi_names() and facts["cuda_driver_version"]
    for gpu in facts["gpus"]:
        assert gpu["compute_mode"] is not None and gpu["utilization_pct"] is not None, gpu
        assert gpu["pcie"] and gpu["pcie"]["width_max"], gpu
        assert isinstance(gpu["processes"], list)


def test_check_sees_the_gpus_through_torch(torch_build, tmp_path):
    """The torch probe's CUDA branch: the device loop, NCCL's version and the arch list."""
    report, _ = check_json("--python", PYTHON, "--only", "gpu", "cuda", "torch", env=clean_env())
    gpu, torch = report["facts"]["gpu"], report["facts"]["torch"]
    assert gpu["source"] == "nvml" and by_id(report, "gpu.devices")[0]["status"] == "ok"
    assert torch["cuda_available"] is True, torch.get("cuda_error")
    assert torch["device_count"] == len(gpu["gpus"])
    assert [d["name"] for d in torch["devices"]] == [g["name"] for g in gpu["gpus"]]
    assert [d["capability"] for d in torch["devices"]] == [g["compute_capability"] for g in gpu["gpus"]]
    assert re.fullmatch(r"\d+\.\d+\.\d+", torch["nccl"] or ""), torch["nccl"]
    cc = gpu["gpus"][0]["compute_capability"].replace(".", "")
    assert any(a.startswith(("sm_", "compute_")) and int(re.sub(r"\D", "", a)) <= int(cc)
               for a in torch["arch_list"]), torch["arch_list"]
    assert not by_id(report, "torch.cuda-unavailable")


def _verify(tmp_path, *args):
    proc = tbdoctor("verify", "--json", "--python", PYTHON, "--no-browser", "--no-server",
                    "--logdir", str(tmp_path / "logs"), *args, env=clean_env(), timeout=600)
    assert proc.returncode in (0, 1), proc.stderr
    return json.loads(proc.stdout)


def test_verify_trains_on_cuda_with_cudnn_and_mixed_precision(torch_build, tmp_path):
    result = _verify(tmp_path)
    assert result["status"] == "pass", result.get("failure")
    torch = result["frameworks"]["torch"]
    assert result["device"].startswith("cuda") and torch["device"].startswith("cuda")
    extras = torch["gpu"]
    assert extras["cudnn"] and extras["peak_memory_mb"] > 0
    import pynvml
    pynvml.nvmlInit()
    try:
        major, _ = pynvml.nvmlDeviceGetCudaComputeCapability(pynvml.nvmlDeviceGetHandleByIndex(0))
    finally:
        pynvml.nvmlShutdown()
    assert extras["amp"] == ("bf16" if major >= 8 else "fp16 with GradScaler")


def test_distributed_verify_chooses_nccl_on_gpus(torch_build, tmp_path):
    nproc = str(min(_nvml_gpus(), 2))  # one rank per GPU: NCCL refuses two ranks on one device
    result = _verify(tmp_path, "--distributed", "--nproc", nproc)
    assert result["status"] == "pass", result.get("failure")
    assert result["distributed"]["backend"] == "nccl" and result["distributed"]["world_size"] == int(nproc)
