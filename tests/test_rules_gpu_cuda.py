"""gpu.* and cuda.* rules over hand-made facts (pure), and the UUID redaction of reports."""

import json

import pytest

from conftest import cuda_facts, cuda_toolkit, gpu_device, gpu_facts, make_facts
from tbdoctor import facts as facts_mod
from tbdoctor.findings import Report
from tbdoctor.render import json_report
from tbdoctor.rules import cuda, evaluate, gpu


def found(facts, rules=None):
    return {f.id: f for f in evaluate(facts, rules)}


def test_no_gpu_no_driver_is_information_not_a_problem():
    result = found(make_facts(gpu=gpu_facts(), cuda=cuda_facts([cuda_toolkit()])))
    assert result["gpu.devices"].status == "info" and result["gpu.devices"].title.endswith("CPU only")
    assert result["cuda.toolkit"].status == "ok" and "can compile CUDA code, not run it" in result["cuda.toolkit"].detail
    assert not [f for f in result.values() if f.is_problem]


def test_other_accelerators_are_named():
    amd = {"vendor": "amd", "name": "AMD Radeon RX 7900 XTX", "backend": "rocm", "source": "rocm-smi"}
    (head,) = gpu.devices(make_facts(gpu=gpu_facts(other_accelerators=[amd])))
    assert head.title == "No NVIDIA GPU; AMD Radeon RX 7900 XTX (ROCM)"


def _broken(**driver):
    base = gpu_facts()
    base["driver"].update(driver)
    return base


def test_module_loaded_without_device_nodes_in_a_container():
    facts = make_facts(gpu=dict(_broken(kernel_module_version="550.54.15", device_nodes=[]), container="docker"))
    (error,) = gpu.driver_state(facts)
    assert error.id == "gpu.device-nodes-missing" and error.status == "error"
    assert "--gpus all" in error.fixes[0].command


def test_module_loaded_without_device_nodes_on_a_host():
    (error,) = gpu.driver_state(make_facts(gpu=_broken(modules={"nvidia": True, "nouveau": False}, device_nodes=["nvidiactl"])))
    assert error.id == "gpu.device-nodes-missing" and error.fixes[0].command == "sudo nvidia-modprobe -c 0 -u"


def test_pci_gpu_without_module_and_nouveau_bound():
    pci = [{"slot": "0000:01:00.0", "vendor": "nvidia", "device_id": "0x2684", "class": "0x030000", "driver": "nouveau"}]
    facts = make_facts(gpu=_broken(pci_devices=pci, modules={"nvidia": False, "nouveau": True}))
    (error,) = gpu.driver_state(facts)
    assert error.id == "gpu.driver-not-loaded" and "nouveau" in error.hint and "blacklist nouveau" in error.fixes[0].command
    assert "NVIDIA device 0x2684, kernel driver nouveau" in error.detail


def test_wsl_without_dev_nvidia_is_fine_when_the_driver_answers():
    facts = make_facts(gpu=gpu_facts([gpu_device()], wsl={"detected": True, "libcuda": "/usr/lib/wsl/lib/libcuda.so.1",
                                                          "dxg": True}))
    facts["gpu"]["driver"]["device_nodes"] = []
    assert not gpu.driver_state(facts)
    assert gpu.platform_of(facts) == "windows"


@pytest.mark.parametrize("smi_status, nvml_code, expected", [
    ("version-mismatch", None, "gpu.driver-library-mismatch"),
    ("not-found", "NVML_ERROR_LIB_RM_VERSION_MISMATCH", "gpu.driver-library-mismatch"),
    ("no-devices", "NVML_ERROR_UNKNOWN", "gpu.driver-sees-no-gpu"),
    ("driver-unreachable", "NVML_ERROR_DRIVER_NOT_LOADED", "gpu.driver-not-loaded"),
    ("timeout", None, "gpu.driver-query-failed"),
    ("garbage", "NVML_ERROR_LIBRARY_NOT_FOUND", "gpu.driver-query-failed"),
    ("not-found", "NVML_ERROR_GPU_IS_LOST", "gpu.driver-query-failed"),
    ("not-found", "NVML_ERROR_LIBRARY_NOT_FOUND", None),
])
def test_driver_failures_map_to_one_finding_each(smi_status, nvml_code, expected):
    base = gpu_facts(nvidia_smi={"path": "/usr/bin/nvidia-smi", "status": smi_status, "method": None,
                                 "error": "x", "output_tail": "x"},
                     nvml={"status": "failed", "error": "x", "code": nvml_code})
    facts = make_facts(gpu=base)
    assert gpu.gpu_problem(facts) == expected
    produced = gpu.driver_state(facts)
    assert [f.id for f in produced] == ([expected] if expected else [])
    assert all(f.fixes for f in produced)


@pytest.mark.parametrize("value, visible", [("", 0), ("-1", 0), ("2", 0), ("foo,0", 0), ("1,0", 2), ("0,5,1", 1),
                                            ("GPU-3f8a2c1e", 1), ("GPU-ffffffff,0", 0), ("MIG-1234abcd", 1)])
def test_cuda_visible_devices_counting(value, visible):
    assert gpu.visible_count(value, [gpu_device(0), gpu_device(1)]) == visible


def test_visible_devices_findings():
    facts = make_facts(gpu=gpu_facts([gpu_device(0), gpu_device(1)],
                                     visible_devices={"CUDA_VISIBLE_DEVICES": "", "NVIDIA_VISIBLE_DEVICES": None}))
    (hide,) = gpu.visible_devices(facts)
    assert hide.id == "gpu.visible-devices-hide-all" and "hides all 2 GPUs" in hide.title
    facts["gpu"]["visible_devices"]["CUDA_VISIBLE_DEVICES"] = "1"
    assert [f.id for f in gpu.visible_devices(facts)] == ["gpu.visible-devices"]
    no_gpu = make_facts(gpu=gpu_facts(container="docker", visible_devices={"CUDA_VISIBLE_DEVICES": None,
                                                                          "NVIDIA_VISIBLE_DEVICES": "void"}))
    assert [f.id for f in gpu.visible_devices(no_gpu)] == ["gpu.visible-devices-hide-all"]
    assert not gpu.visible_devices(make_facts(gpu=gpu_facts(visible_devices={"CUDA_VISIBLE_DEVICES": "-1",
                                                                             "NVIDIA_VISIBLE_DEVICES": None})))


@pytest.mark.parametrize("driver, kit, platform, warns", [
    ("535.104.05", ("13.0", "13.0.88"), "linux", True),
    ("580.65.06", ("13.0", "13.0.88"), "linux", False),
    ("470.82.01", ("12.1", "12.1.105"), "linux", True),
    ("527.41", ("12.2", "12.2.140"), "linux", False),
    ("527.41", ("12.2", "12.2.140"), "windows", True),  # Windows / WSL: 12.x needs 528.33
])
def test_driver_too_old_for_the_toolkit(driver, kit, platform, warns):
    facts = make_facts(gpu=gpu_facts([gpu_device()], driver=driver),
                       cuda=cuda_facts([cuda_toolkit(kit[0], kit[1], root=f"/usr/local/cuda-{kit[0]}")]))
    if platform == "windows":
        facts["host_platform"] = "win32"
    produced = cuda.driver_too_old(facts)
    assert bool(produced) == warns
    if warns:
        (w,) = produced
        assert driver in w.title and f"CUDA {kit[0]} toolkit" in w.title and "needs driver >=" in w.title


def test_no_driver_means_no_too_old_warning():
    assert not cuda.driver_too_old(make_facts(gpu=gpu_facts(), cuda=cuda_facts([cuda_toolkit()])))
    assert not cuda.driver_too_old(make_facts(gpu=None, cuda=cuda_facts([cuda_toolkit()])))


def test_toolkit_mismatch_and_invalid_home():
    kits = [cuda_toolkit("12.4", "12.4.131", "/usr/local/cuda-12.4"),
            cuda_toolkit("11.8", "11.8.89", "/usr/local/cuda-11.8", on_path=False, from_cuda_home=True)]
    facts = make_facts(cuda=cuda_facts(kits, env={"CUDA_HOME": "/usr/local/cuda-11.8", "CUDA_PATH": None, "CUDA_ROOT": None}))
    (w,) = cuda.home_vs_path(facts)
    assert w.id == "cuda.toolkit-mismatch" and "12.4 (/usr/local/cuda-12.4)" in w.title and "11.8 (/usr/local/cuda-11.8)" in w.title
    same = make_facts(cuda=cuda_facts([dict(kits[0], from_cuda_home=True)],
                                      env={"CUDA_HOME": "/usr/local/cuda-12.4", "CUDA_PATH": None, "CUDA_ROOT": None}))
    assert not cuda.home_vs_path(same)
    invalid = make_facts(cuda=cuda_facts(kits[:1], env={"CUDA_HOME": "/opt/nothing", "CUDA_PATH": None, "CUDA_ROOT": None}))
    (w,) = cuda.home_vs_path(invalid)
    assert w.id == "cuda.cuda-home-invalid" and w.fixes[0].command == "export CUDA_HOME=/usr/local/cuda-12.4"


def test_ld_library_path_cudart_against_the_toolkit_on_path():
    lib = {"path": "/usr/local/cuda-11.8/lib64/libcudart.so.11.0", "version": "11.8.89", "source": "LD_LIBRARY_PATH",
           "entry": "/usr/local/cuda-11.8/lib64"}
    facts = make_facts(cuda=cuda_facts([cuda_toolkit("12.4", "12.4.131", "/usr/local/cuda-12.4")],
                                       libraries={"libcudart": [lib]},
                                       ld_library_path=["/usr/local/cuda-11.8/lib64", "/opt/other"]))
    (w,) = cuda.ld_library_path_mixed(facts)
    assert "libcudart 11" in w.title and "the CUDA 12.4 toolkit on PATH" in w.title
    assert w.fixes[0].command == "export LD_LIBRARY_PATH=/opt/other"


def test_libcuda_missing_only_when_the_driver_lists_gpus():
    with_gpu = make_facts(gpu=gpu_facts([gpu_device()], container="docker"), cuda=cuda_facts())
    (w,) = cuda.libcuda_missing(with_gpu)
    assert "NVIDIA_DRIVER_CAPABILITIES=compute,utility" in w.fixes[0].command
    assert not cuda.libcuda_missing(make_facts(gpu=gpu_facts(), cuda=cuda_facts()))
    libcuda = {"path": "/usr/lib/x86_64-linux-gnu/libcuda.so.1", "version": "535.104.05", "source": "ldconfig"}
    assert not cuda.libcuda_missing(make_facts(gpu=gpu_facts([gpu_device()]), cuda=cuda_facts(libraries={"libcuda": [libcuda]})))


def test_failed_probes_are_unknown_not_false():
    facts = make_facts(gpu=None, cuda=None)
    assert not [f for rule in gpu.RULES + cuda.RULES for f in rule(facts)]


def test_gpu_uuids_are_redacted_in_reports_but_kept_in_facts():
    uuid = "GPU-3f8a2c1e-7b4d-4e2a-9c1f-5d6e7a8b9c00"
    facts = make_facts(gpu=gpu_facts([gpu_device()], visible_devices={"CUDA_VISIBLE_DEVICES": uuid + ",7",
                                                                      "NVIDIA_VISIBLE_DEVICES": None}))
    report = Report(target=facts["target"], findings=evaluate(facts), facts=facts)
    text = json_report.render(report)
    assert "3f8a2c1e" not in text and "GPU-<redacted>" in text
    assert json.loads(text)["facts"]["gpu"]["gpus"][0]["uuid"] == "<redacted>"
    assert facts["gpu"]["gpus"][0]["uuid"] == uuid  # the facts themselves are untouched
    assert facts_mod.redact_identifiers("GPU-accelerated MIG-GPU-3f8a2c1e-7b4d/1/0") == "GPU-accelerated MIG-GPU-<redacted>/1/0"


def test_toolkit_that_cannot_target_the_gpu():
    blackwell = gpu_device(name="NVIDIA GeForce RTX 5090", cc="12.0")
    facts = make_facts(gpu=gpu_facts([blackwell], driver="570.26"), cuda=cuda_facts([cuda_toolkit("12.6", "12.6.85")]))
    (w,) = cuda.toolkit_vs_gpu(facts)
    assert "CUDA 12.6 toolkit cannot compile for NVIDIA GeForce RTX 5090" in w.title and "CUDA 12.8" in w.detail
    facts["cuda"]["toolkits"] = [cuda_toolkit("12.8", "12.8.93")]
    assert not cuda.toolkit_vs_gpu(facts)
