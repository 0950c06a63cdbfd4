"""GPU node health (gpu.* from tbdoctor/rules/gpu_health.py): `tbdoctor check` as a process over
recorded NVML answers and fake nvidia-smi / dmesg executables, and the rules over hand-made facts
for what this machine's /proc and /dev decide (nvidia-uvm, NVSwitch nodes)."""

import sys

import pytest

from conftest import FIXTURES, by_id, check_json, fake_gpu_env, gpu_device, gpu_facts, ids, make_facts
from tbdoctor.rules import evaluate, gpu_health

posix = pytest.mark.skipif(sys.platform == "win32", reason="fake nvidia-smi and dmesg are POSIX shell scripts")
HEALTH_IDS = {"gpu.fabric-manager-not-running", "gpu.uvm-missing", "gpu.memory-retirement-pending",
              "gpu.row-remapping-failed", "gpu.ecc-uncorrectable", "gpu.compute-mode-prohibited",
              "gpu.compute-mode-exclusive", "gpu.busy", "gpu.mig-enabled", "gpu.mig-no-instances",
              "gpu.persistence-mode-off", "gpu.clocks-throttled", "gpu.pcie-link-degraded", "gpu.xid-errors"}


def gpu_check(tmp_path, **env):
    report, proc = check_json("--python", sys.executable, "--only", "gpu", env=fake_gpu_env(tmp_path, **env))
    return report, report["facts"]["gpu"], proc


def one(report, finding_id):
    (found,) = by_id(report, finding_id)
    return found


@posix
@pytest.mark.parametrize("source", ["nvml", "smi"])
def test_a_sick_hgx_node_names_each_problem_on_its_gpu(tmp_path, source):
    """Four H100s on an NVSwitch board, fabric manager down: GPU 0 has rows pending remapping and
    uncorrectable ECC errors, GPU 1 is Exclusive Process and held by python3, GPU 2 runs hot on a
    x8 link, GPU 3 is Prohibited, out of spare rows, persistence off, idle at PCIe gen 3 of 5."""
    report, gpu, proc = gpu_check(tmp_path, **{source: "hgx-h100-sick"})
    assert gpu["source"] == ("nvml" if source == "nvml" else "nvidia-smi")
    assert gpu["gpus"][1]["processes"] == [{"pid": 48213, "name": "python3", "used_mib": 72704}]
    assert ids(report) & HEALTH_IDS == {
        "gpu.fabric-manager-not-running", "gpu.memory-retirement-pending", "gpu.row-remapping-failed",
        "gpu.ecc-uncorrectable", "gpu.compute-mode-prohibited", "gpu.compute-mode-exclusive", "gpu.busy",
        "gpu.persistence-mode-off", "gpu.clocks-throttled", "gpu.pcie-link-degraded"}
    fabric = one(report, "gpu.fabric-manager-not-running")
    assert fabric["status"] == "error" and "error 802" in fabric["title"] and "GPU 3" in fabric["title"]
    assert "nvidia-fabricmanager" in fabric["fixes"][0]["command"]
    assert one(report, "gpu.memory-retirement-pending")["title"].startswith("GPU 0:")
    assert "--gpu-reset -i 0" in one(report, "gpu.memory-retirement-pending")["fixes"][0]["command"]
    assert one(report, "gpu.ecc-uncorrectable")["title"] == "GPU 0: uncorrectable ECC errors since the driver loaded (4)"
    assert one(report, "gpu.memory-retirement-pending")["detail"] == \
        "GPU 0: remapped rows: 0 correctable, 4 uncorrectable, remapping pending"
    assert one(report, "gpu.row-remapping-failed")["title"].startswith("GPU 3:")
    prohibited = one(report, "gpu.compute-mode-prohibited")
    assert prohibited["status"] == "error" and prohibited["fixes"][0]["command"] == "sudo nvidia-smi -i 3 -c DEFAULT"
    exclusive = one(report, "gpu.compute-mode-exclusive")
    assert exclusive["status"] == "warning" and "python3 (pid 48213, 71.0 GiB)" in exclusive["title"]
    assert one(report, "gpu.busy")["title"] == ("GPUs already in use: GPU 1: python3 (pid 48213, 71.0 GiB); "
                                                "GPU 2: processes tbdoctor cannot see (another container or user)")
    assert one(report, "gpu.persistence-mode-off")["title"] == "Persistence mode is off on GPU 3"
    throttled = one(report, "gpu.clocks-throttled")
    assert throttled["title"].startswith("GPU 2:") and "hardware thermal slowdown" in throttled["detail"]
    # GPU 3 idles at gen 3 of 5: power saving, not a fault; GPU 2's x8 of x16 is
    assert one(report, "gpu.pcie-link-degraded")["title"] == "PCIe link below its maximum: GPU 2: link width x8 of x16"
    assert proc.returncode != 0


@posix
@pytest.mark.parametrize("source", ["nvml", "smi"])
def test_a_volta_gpu_with_pages_pending_retirement(tmp_path, source):
    report, gpu, _ = gpu_check(tmp_path, **{source: "v100-535-pages-pending"})
    assert gpu["gpus"][0]["retired_pages_pending"] is True and gpu["gpus"][0]["remapped_rows"] is None
    assert ids(report) & HEALTH_IDS == {"gpu.memory-retirement-pending", "gpu.ecc-uncorrectable"}
    assert one(report, "gpu.memory-retirement-pending")["detail"] == "GPU 0: pages pending retirement"


@posix
@pytest.mark.parametrize("source", ["nvml", "smi"])
def test_a_healthy_gpu_has_no_node_health_finding(tmp_path, source):
    report, gpu, proc = gpu_check(tmp_path, **{source: "h100-550"})
    assert not ids(report) & HEALTH_IDS and proc.returncode == 0
    assert gpu["gpus"][0]["processes"] in ([], None)


@posix
@pytest.mark.parametrize("source", ["nvml", "smi"])
def test_mig_enabled_names_the_instances_cuda_sees(tmp_path, source):
    report, gpu, _ = gpu_check(tmp_path, **{source: "h200-580"})
    assert gpu["gpus"][0]["mig_devices"] == ["MIG-<redacted>"]  # the report redacts UUIDs; --save-facts keeps them
    mig = one(report, "gpu.mig-enabled")
    assert mig["status"] == "info" and "CUDA_VISIBLE_DEVICES=MIG-" in mig["fixes"][0]["command"]
    assert "gpu.mig-no-instances" not in ids(report)


@posix
def test_a_driver_that_knows_only_the_new_clock_field_name(tmp_path):
    """nvidia-smi rejecting `clocks_throttle_reasons.active` (its message as in huggingface/candle#733
    for compute_cap): the health query is asked again with `clocks_event_reasons.active`."""
    import shutil
    smi = tmp_path / "smi"
    shutil.copytree(FIXTURES / "nvidia-smi" / "hgx-h100-sick", smi)
    (smi / "health-new.out").write_text((smi / "health.out").read_text())
    (smi / "health.out").write_text('Field "clocks_throttle_reasons.active" is not a valid field to query.\n')
    (smi / "health.rc").write_text("2\n")
    report, gpu, _ = gpu_check(tmp_path, smi=str(smi))
    assert [g["throttle_reasons"] for g in gpu["gpus"]] == [0x1, 0x0, 0x40, 0x1]
    assert one(report, "gpu.clocks-throttled")["title"].startswith("GPU 2:")


@posix
def test_mig_enabled_without_instances_leaves_cuda_no_device(tmp_path):
    report, gpu, _ = gpu_check(tmp_path, nvml="h200-580-mig-empty")
    assert gpu["gpus"][0]["mig_devices"] == []
    empty = one(report, "gpu.mig-no-instances")
    assert empty["status"] == "warning" and "-mig 0" in empty["fixes"][1]["command"]
    assert "gpu.mig-enabled" not in ids(report)


def _fake_dmesg(tmp_path, text: str, rc: int = 0):
    bin_dir = tmp_path / "fake-bin"
    bin_dir.mkdir(exist_ok=True)
    (tmp_path / "dmesg.out").write_text(text)
    script = bin_dir / "dmesg"
    script.write_text(f"#!/bin/sh\ncat '{tmp_path / 'dmesg.out'}'\nexit {rc}\n")
    script.chmod(0o755)


@posix
def test_xid_errors_in_the_kernel_log(tmp_path):
    """Line formats of NVIDIA/NVSentinel#155 (no pid) and the usual `pid=..., name=...` form."""
    _fake_dmesg(tmp_path, "[  12.000001] nvidia-uvm: Loaded the UVM driver, major device number 235.\n"
                          "[1843.308145] NVRM: Xid (PCI:0000:44:00): 79, GPU has fallen off the bus.\n"
                          "[2101.120455] NVRM: Xid (PCI:0000:18:00): 13, pid=48213, name=python3, Graphics "
                          "SM Warp Exception on (GPC 0, TPC 1, SM 0): Illegal Instruction Encoding\n")
    report, gpu, _ = gpu_check(tmp_path, nvml="h100-550")
    assert [e["xid"] for e in gpu["xid"]["events"]] == [79, 13] and gpu["xid"]["events"][0]["pci"] == "0000:44:00"
    xid = one(report, "gpu.xid-errors")
    assert xid["status"] == "warning"
    assert "Xid 13 × 1 (graphics engine exception" in xid["title"] and "Xid 79 × 1 (GPU has fallen off the bus)" in xid["title"]


@posix
def test_an_unreadable_kernel_log_is_no_finding(tmp_path):
    _fake_dmesg(tmp_path, "dmesg: read kernel buffer failed: Operation not permitted\n", rc=1)
    report, gpu, _ = gpu_check(tmp_path, nvml="h100-550")
    assert gpu["xid"]["readable"] is False and "gpu.xid-errors" not in ids(report)


def found(gpu):
    return {f.id: f for f in evaluate(make_facts(gpu=gpu), gpu_health.RULES)}


def _with_driver(modules=None, nodes=None, **overrides):
    facts = gpu_facts([gpu_device()], **overrides)
    facts["driver"].update(modules=modules or {"nvidia": True, "nvidia_uvm": True, "nouveau": False},
                           device_nodes=nodes if nodes is not None else ["nvidia-uvm", "nvidia0", "nvidiactl"])
    return facts


def test_nvidia_uvm_missing_stops_cuda():
    result = found(_with_driver({"nvidia": True, "nvidia_uvm": False, "nouveau": False}, ["nvidia0", "nvidiactl"]))
    uvm = result["gpu.uvm-missing"]
    assert uvm.status == "error" and "nvidia_uvm kernel module is not loaded" in uvm.title
    assert "/dev/nvidia-uvm does not exist" in uvm.title and "modprobe nvidia-uvm" in uvm.fixes[0].command
    in_container = found(dict(_with_driver(nodes=["nvidia0", "nvidiactl"]), container="docker"))["gpu.uvm-missing"]
    assert in_container.title.endswith("/dev/nvidia-uvm does not exist") and "--gpus" in in_container.fixes[0].command
    assert "gpu.uvm-missing" not in found(_with_driver())
    wsl = dict(_with_driver(nodes=[]), wsl={"detected": True, "libcuda": None, "dxg": True})
    assert "gpu.uvm-missing" not in found(wsl)


def test_nvswitch_without_fabric_manager_process():
    """A100 HGX: NVML has no fabric state (pre-Hopper); the NVSwitch nodes and the missing process tell."""
    nodes = ["nvidia-nvswitch0", "nvidia-nvswitchctl", "nvidia-uvm", "nvidia0", "nvidiactl"]
    down = found(dict(_with_driver(nodes=nodes), fabric_manager_running=False))["gpu.fabric-manager-not-running"]
    assert down.title.startswith("NVSwitch system without a running NVIDIA Fabric Manager") and "nvidia-nvswitch0" in down.detail
    assert "gpu.fabric-manager-not-running" not in found(dict(_with_driver(nodes=nodes), fabric_manager_running=True))
    assert "gpu.fabric-manager-not-running" not in found(dict(_with_driver(), fabric_manager_running=False))
    in_container = dict(_with_driver(nodes=nodes), fabric_manager_running=False, container="docker")
    assert "gpu.fabric-manager-not-running" not in found(in_container)  # its /proc cannot see the host's
    done = dict(_with_driver(nodes=nodes), fabric_manager_running=False,
                gpus=[gpu_device(fabric={"state": "completed", "status": None})])
    assert "gpu.fabric-manager-not-running" not in found(done)  # e.g. FM in another container; registration is what counts
    failed = dict(_with_driver(), gpus=[gpu_device(fabric={"state": "completed", "status": "Unknown Error"})])
    assert "(Unknown Error)" in found(failed)["gpu.fabric-manager-not-running"].detail


def test_pcie_generation_counts_only_under_load_and_power_cap_is_not_throttling():
    busy = [gpu_device(pcie={"width": 16, "width_max": 16, "gen": 3, "gen_max": 4}, utilization_pct=97)]
    idle = [gpu_device(pcie={"width": 16, "width_max": 16, "gen": 1, "gen_max": 4}, utilization_pct=0)]
    assert found(gpu_facts(busy))["gpu.pcie-link-degraded"].title.endswith("PCIe gen 3 of 4 while 97% busy")
    assert "gpu.pcie-link-degraded" not in found(gpu_facts(idle))
    assert "gpu.clocks-throttled" not in found(gpu_facts([gpu_device(throttle_reasons=0x4)]))  # SW power cap
    assert "power brake" in found(gpu_facts([gpu_device(throttle_reasons=0x80)]))["gpu.clocks-throttled"].detail


def test_memory_used_by_invisible_processes_and_small_holders():
    hidden = [gpu_device(memory_used_mib=60000, processes=[])]
    assert "processes tbdoctor cannot see" in found(gpu_facts(hidden))["gpu.busy"].detail
    computing = [gpu_device(memory_used_mib=900, processes=[], utilization_pct=99)]
    assert found(gpu_facts(computing))["gpu.busy"].status == "warning"
    small = [gpu_device(memory_used_mib=500, processes=[{"pid": 7, "name": "Xorg", "used_mib": 480}])]
    assert found(gpu_facts(small))["gpu.busy"].status == "info"
    assert "gpu.busy" not in found(gpu_facts([gpu_device(memory_used_mib=4, processes=[])]))


def test_persistence_is_a_linux_matter_and_application_xids_are_information():
    off = [gpu_device(persistence_mode="disabled")]
    assert found(gpu_facts(off))["gpu.persistence-mode-off"].status == "info"
    assert "gpu.persistence-mode-off" not in found(gpu_facts(off, wsl={"detected": True, "libcuda": None, "dxg": True}))
    app = gpu_facts([gpu_device()], xid={"readable": True, "error": None,
                                          "events": [{"pci": "0000:18:00", "xid": 31, "text": "NVRM: Xid ...: 31, ..."}]})
    assert found(app)["gpu.xid-errors"].status == "info"
