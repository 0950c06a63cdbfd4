"""`tbdoctor check` end to end for the GPU and CUDA sections: the real CLI as a process, with a
fake nvidia-smi first on PATH and recorded NVML answers (this machine has no NVIDIA driver)."""

import json
import shutil
import sys

import pytest

from conftest import FIXTURES, by_id, check_json, fake_gpu_env, ids, make_venv, tbdoctor

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="fake nvidia-smi is a POSIX shell script")
UUID = "3f8a2c1e-7b4d-4e2a-9c1f-5d6e7a8b9c01"


def gpu_check(tmp_path, *args, **env):
    report, proc = check_json("--python", sys.executable, "--only", "gpu", "cuda", *args,
                              env=fake_gpu_env(tmp_path, **env))
    return report, report["facts"]["gpu"], proc


def toolkit_on_path():
    return shutil.which("nvcc") is not None


@pytest.mark.parametrize("source", ["smi", "nvml"])
def test_a100_with_driver_535(tmp_path, source):
    kind = {"smi": "a100-535"} if source == "smi" else {"nvml": "a100-535"}
    report, gpu, _ = gpu_check(tmp_path, "--save-facts", str(tmp_path / "facts.json"), **kind)
    assert gpu["source"] == ("nvidia-smi" if source == "smi" else "nvml")
    assert gpu["driver_version"] == "535.104.05" and gpu["cuda_driver_version"] == "12.2"
    assert [(g["index"], g["name"], g["compute_capability"], g["memory_total_mib"]) for g in gpu["gpus"]] == [
        (0, "NVIDIA A100-SXM4-80GB", "8.0", 81920), (1, "NVIDIA A100-SXM4-80GB", "8.0", 81920)]
    assert gpu["gpus"][0]["mig_mode"] == "disabled" and gpu["gpus"][0]["persistence_mode"] == "enabled"
    head = by_id(report, "gpu.devices")[0]
    assert head["status"] == "ok" and "2 × NVIDIA A100-SXM4-80GB (CC 8.0, 80 GiB)" in head["title"]
    assert not ids(report, "error")
    # UUIDs: redacted in the report (facts included), kept in the saved facts
    assert gpu["gpus"][0]["uuid"] == "<redacted>" and UUID not in json.dumps(report)
    saved = json.loads((tmp_path / "facts.json").read_text())
    assert saved["gpu"]["gpus"][0]["uuid"] == f"GPU-{UUID}"


@pytest.mark.skipif(not toolkit_on_path(), reason="needs a CUDA 13 nvcc on PATH (this project's machines have one)")
def test_driver_535_is_too_old_for_the_cuda_13_toolkit(tmp_path):
    report, _, proc = gpu_check(tmp_path, smi="a100-535")
    kit = next(k for k in report["facts"]["cuda"]["toolkits"] if k["on_path"])
    if not kit["version"].startswith("13."):
        pytest.skip(f"nvcc on PATH is CUDA {kit['version']}")
    (warning,) = by_id(report, "cuda.driver-too-old-for-toolkit")
    assert warning["status"] == "warning"
    assert "535.104.05" in warning["title"] and kit["version"] in warning["title"] and ">= 580" in warning["title"]
    assert proc.returncode == 0  # a warning, not an error: the toolkit still compiles


@pytest.mark.parametrize("case, name, cc, driver, cuda", [
    ("h100-550", "NVIDIA H100 80GB HBM3", "9.0", "550.54.15", "12.4"),
    ("h200-580", "NVIDIA H200", "9.0", "580.95.05", "13.0"),
    ("rtx4090-550", "NVIDIA GeForce RTX 4090", "8.9", "550.40.07", "12.4"),
])
@pytest.mark.parametrize("source", ["smi", "nvml"])
def test_datacenter_and_desktop_gpus(tmp_path, case, name, cc, driver, cuda, source):
    report, gpu, _ = gpu_check(tmp_path, **({"smi": case} if source == "smi" else {"nvml": case}))
    (only,) = gpu["gpus"]
    assert (only["name"], only["compute_capability"], gpu["driver_version"], gpu["cuda_driver_version"]) == \
        (name, cc, driver, cuda)
    assert not ids(report, "error")
    too_old = by_id(report, "cuda.driver-too-old-for-toolkit")
    if driver.startswith("580"):
        assert not too_old and only["mig_mode"] == "enabled"


@pytest.mark.parametrize("source", ["smi", "nvml"])
def test_gtx_1080_with_driver_470(tmp_path, source):
    """R470's nvidia-smi rejects the compute_cap field: the query is retried without it and the
    compute capability comes from the product table."""
    report, gpu, _ = gpu_check(tmp_path, **({"smi": "gtx1080-470"} if source == "smi" else {"nvml": "gtx1080-470"}))
    (only,) = gpu["gpus"]
    assert (only["name"], only["compute_capability"], gpu["driver_version"]) == \
        ("NVIDIA GeForce GTX 1080", "6.1", "470.182.03")
    assert only["compute_capability_source"] == ("name" if source == "smi" else "nvml")
    if source == "smi":
        assert gpu["cuda_driver_version"] == "11.4" and gpu["nvidia_smi"]["method"] == "query"
    assert not ids(report, "error")
    kit = next((k for k in report["facts"]["cuda"]["toolkits"] if k["on_path"]), None)
    if kit and kit["version"].startswith("13."):  # CUDA 13 dropped Pascal
        (warning,) = by_id(report, "cuda.toolkit-cannot-target-gpu")
        assert "NVIDIA GeForce GTX 1080 (compute capability 6.1, Pascal)" in warning["title"]


@pytest.mark.parametrize("env", [{"smi": "no-driver"}, {"nvml": "driver-not-loaded"},
                                 {"smi": "no-driver", "nvml": "driver-not-loaded"}])
def test_driver_not_loaded_is_an_error_with_a_fix(tmp_path, env):
    report, gpu, proc = gpu_check(tmp_path, **env)
    (error,) = by_id(report, "gpu.driver-not-loaded")
    assert error["status"] == "error" and error["fixes"] and error["hint"]
    if "smi" in env:
        assert "couldn't communicate with the NVIDIA driver" in error["title"]
        assert gpu["nvidia_smi"]["status"] == "driver-unreachable"
    assert gpu["gpus"] == [] and proc.returncode == 1


def test_a_hanging_nvidia_smi_cannot_stall_the_check(tmp_path):
    report, gpu, proc = gpu_check(tmp_path, "--timeout", "3", smi="hang")
    assert gpu["nvidia_smi"]["status"] == "timeout"
    (error,) = by_id(report, "gpu.driver-query-failed")
    assert error["status"] == "error" and "hangs" in error["title"] and error["fixes"]
    assert report["facts"]["probes"]["gpu"]["status"] == "ok" and proc.returncode == 1


def test_a_hanging_nvml_cannot_stall_the_check(tmp_path):
    report, gpu, _ = gpu_check(tmp_path, "--timeout", "3", nvml="hang")
    assert gpu["nvml"]["status"] == "timeout"
    assert by_id(report, "gpu.driver-query-failed")[0]["title"].startswith("NVML hangs")


@pytest.mark.parametrize("env, title", [({"smi": "garbage"}, "not what nvidia-smi prints"),
                                        ({"nvml": "gpu-lost"}, "GPU is lost")])
def test_garbage_and_lost_gpus_become_findings(tmp_path, env, title):
    report, gpu, _ = gpu_check(tmp_path, **env)
    (error,) = by_id(report, "gpu.driver-query-failed")
    assert title in error["title"] and gpu["gpus"] == []
    if "smi" in env:
        assert "forwarding to remote agent" in gpu["nvidia_smi"]["output_tail"]


def test_cuda_visible_devices_hiding_every_gpu(tmp_path):
    report, _, _ = gpu_check(tmp_path, nvml="a100-535", CUDA_VISIBLE_DEVICES="-1")
    (warning,) = by_id(report, "gpu.visible-devices-hide-all")
    assert warning["status"] == "warning" and warning["fixes"][0]["command"] == "unset CUDA_VISIBLE_DEVICES"


@pytest.mark.skipif(not toolkit_on_path(), reason="needs nvcc on PATH")
def test_this_machine_toolkit_without_driver_is_not_an_error(tmp_path):
    """The real case of this project's machines: a CUDA toolkit, no driver, no GPU."""
    if shutil.which("nvidia-smi"):
        pytest.skip("a real NVIDIA driver is installed here")
    report, proc = check_json("--python", sys.executable, "--only", "gpu", "cuda")  # real pynvml, real nvcc
    gpu = report["facts"]["gpu"]
    assert gpu["gpus"] == [] and gpu["driver_version"] is None and gpu["source"] is None
    assert by_id(report, "gpu.devices")[0]["title"] == "No NVIDIA GPU or driver found: CPU only"
    kit = by_id(report, "cuda.toolkit")[0]
    assert kit["status"] == "ok" and kit["title"].startswith("CUDA toolkit ")
    assert "can compile CUDA code, not run it" in kit["detail"]
    assert not ids(report, "error") and not ids(report, "warning") and proc.returncode == 0


def _fake_toolkit(root, release):
    """A second toolkit folder (this machine has one): bin/nvcc printing its release."""
    (root / "bin").mkdir(parents=True)
    (root / "version.json").write_text(json.dumps({"cuda": {"version": release}}))
    nvcc = root / "bin" / "nvcc"
    major_minor = ".".join(release.split(".")[:2])
    nvcc.write_text("#!/bin/sh\necho 'nvcc: NVIDIA (R) Cuda compiler driver'\n"
                    f"echo 'Cuda compilation tools, release {major_minor}, V{release}'\n")
    nvcc.chmod(0o755)
    return root


def test_path_and_cuda_home_toolkits_disagree(tmp_path):
    on_path = _fake_toolkit(tmp_path / "cuda-12.8", "12.8.93")
    home = _fake_toolkit(tmp_path / "cuda-11.8", "11.8.89")
    env = fake_gpu_env(tmp_path, CUDA_HOME=str(home))
    env["PATH"] = f"{on_path / 'bin'}:{env['PATH']}"
    report, _ = check_json("--python", sys.executable, "--only", "cuda", env=env)
    (warning,) = by_id(report, "cuda.toolkit-mismatch")
    assert "12.8" in warning["title"] and "11.8" in warning["title"] and str(home) in warning["title"]
    assert warning["fixes"][0]["command"] == f"export CUDA_HOME={on_path}"


def test_cuda_home_without_nvcc(tmp_path):
    report, _ = check_json("--python", sys.executable, "--only", "cuda",
                           env=fake_gpu_env(tmp_path, CUDA_HOME=str(tmp_path / "nowhere")))
    assert by_id(report, "cuda.cuda-home-invalid")[0]["status"] == "warning"


def test_pip_cuda_wheels_in_the_target_and_ld_library_path_in_front_of_them(tmp_path):
    """A cuDNN 8 folder on LD_LIBRARY_PATH shadows the cuDNN 9 that the target's nvidia-cudnn-cu12 wheel ships."""
    env_dir = make_venv(tmp_path)
    info = env_dir.add_dist("nvidia-cudnn-cu12", "9.1.0.70")
    lib = env_dir.site / "nvidia" / "cudnn" / "lib"
    lib.mkdir(parents=True)
    (lib / "libcudnn.so.9").write_bytes(b"")
    with open(info / "RECORD", "a") as fh:
        fh.write("nvidia/cudnn/lib/libcudnn.so.9,,\n")
    old = tmp_path / "cuda-11.8-lib64"
    old.mkdir()
    (old / "libcudnn.so.8.9.7").write_bytes(b"")
    (old / "libcudnn.so.8").symlink_to("libcudnn.so.8.9.7")
    report, _ = check_json("--python", str(env_dir.python), "--only", "cuda",
                           env=fake_gpu_env(tmp_path, LD_LIBRARY_PATH=str(old)))
    cuda = report["facts"]["cuda"]
    assert {"name": "nvidia-cudnn-cu12", "version": "9.1.0.70", "location": str(env_dir.site)} in cuda["pip_wheels"]
    pip_cudnn = [l for l in cuda["libraries"]["libcudnn"] if l["source"] == "pip"]
    assert pip_cudnn[0]["path"] == str(lib / "libcudnn.so.9") and pip_cudnn[0]["wheel_version"] == "9.1.0.70"
    (warning,) = by_id(report, "cuda.ld-library-path-mixed")
    assert "libcudnn 8" in warning["title"] and "libcudnn 9 from nvidia-cudnn-cu12" in warning["title"]
    assert warning["fixes"][0]["command"] == "unset LD_LIBRARY_PATH"


def test_console_report_redacts_uuids_too(tmp_path):
    uuid = f"GPU-{UUID}"
    proc = tbdoctor("check", "--python", sys.executable, "--only", "gpu", "-v",
                    env=fake_gpu_env(tmp_path, nvml="a100-535", CUDA_VISIBLE_DEVICES=uuid[:12] + "zz"))
    assert "NVIDIA A100-SXM4-80GB" in proc.stdout and "CUDA_VISIBLE_DEVICES='GPU-<redacted>zz'" in proc.stdout
    assert UUID[:8] not in proc.stdout


def test_a_stray_recording_variable_invents_no_gpus(tmp_path):
    """The NVML recordings are the tests' (tests/nvml_recording.py): the variable that once
    switched tbdoctor itself onto a recording names GPUs that this machine does not have."""
    env = fake_gpu_env(tmp_path, smi=None, nvml="library-not-found",
                       TBDOCTOR_NVML_RECORDING=str(FIXTURES / "nvml" / "a100-535.json"))
    report, _ = check_json("--python", sys.executable, "--only", "gpu", env=env)
    gpu = report["facts"]["gpu"]
    assert gpu["gpus"] == [] and "A100" not in json.dumps(report), gpu
