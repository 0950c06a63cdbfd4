"""The bundled compatibility knowledge base (checks/*.toml through tbdoctor.compat), the
nvidia-smi parsers over recorded outputs, and the `tbdoctor compat` command."""

import json

import pytest

from conftest import FIXTURES, tbdoctor
from tbdoctor import compat, tables
from tbdoctor.gpuinfo import nvidia_smi, os_gpus

SMI = FIXTURES / "nvidia-smi"


@pytest.mark.parametrize("table", ["cuda", "gpus", "torch", "tensorflow"])
def test_every_table_names_its_source(table):
    data = tables.load(table)

    def walk(node, where):
        assert isinstance(node.get("source"), str) and node["source"], f"{table}.toml {where or 'top'} has no source"
        for key, value in node.items():
            if isinstance(value, dict) and key not in ("linux", "windows"):
                walk(value, f"{where}.{key}")
    walk(data, "")


@pytest.mark.parametrize("cuda, platform, floor", [("12.8", "linux", "525.60.13"), ("12.1.105", "linux", "525.60.13"),
                                                   ("13.0", "linux", "580"), ("11.8", "linux", "450.80.02"),
                                                   ("12.4", "win32", "528.33"), ("14.0", "linux", None), ("x", "linux", None)])
def test_min_driver_is_the_minor_version_compatibility_floor(cuda, platform, floor):
    assert compat.min_driver(cuda, platform) == floor


def test_driver_supports_cuda():
    assert compat.driver_supports_cuda("535.104.05", "12.8") is True  # MVC: any 12.x on >= 525.60.13
    assert compat.driver_supports_cuda("535.104.05", "13.0") is False
    assert compat.driver_supports_cuda("525.60.13", "12.0") is True
    assert compat.driver_supports_cuda("525.60.12", "12.0") is False
    assert compat.driver_supports_cuda("470.82.01", "11.8") is True
    assert compat.driver_supports_cuda("banana", "12.0") is None and compat.driver_supports_cuda("535.1", "99.0") is None


def test_toolkit_driver_and_full_support():
    assert compat.toolkit_driver("13.0") == "580.65.06" and compat.toolkit_driver("12.2.2") == "535.104.05"
    assert compat.toolkit_driver("12.4", "windows") == "551.61" and compat.toolkit_driver("13.1", "windows") is None
    assert compat.full_support_cuda("535.104.05") == "12.2" and compat.full_support_cuda("470.82.01") == "11.4"


def test_torch_variants_and_index():
    assert compat.torch_variants("2.7.1") == ["cu118", "cu126", "cu128"]
    assert compat.torch_variants("2.8.0+cu128") == ["cu126", "cu128", "cu129"]
    assert compat.torch_variants(None) == compat.torch_variants(compat.latest_torch()) != []
    assert compat.torch_variants("2.15") == [] and compat.torch_variants("9.9") == []
    assert compat.torch_index_url("cu128") == "https://download.pytorch.org/whl/cu128"
    assert compat.variant_cuda("cu130") == "13.0" and compat.variant_cuda("cpu") is None


@pytest.mark.parametrize("driver, torch, cc, best", [
    ("535.104.05", "2.14", None, "cu126"),     # a 12.x driver: not the cu13 builds
    ("580.95.05", "2.14", None, "cu132"),
    ("580.95.05", "2.14", "6.1", "cu126"),     # Pascal: only the cu126 build has sm_60 code
    ("580.95.05", "2.7", "12.0", "cu128"),     # Blackwell needs a cu128 build
    ("570.26", "2.6", "12.0", None),           # ...which torch 2.6 did not publish
    ("470.82.01", "2.7", None, "cu118"),
    ("470.82.01", "2.9", None, None),
    ("580.95.05", "2.11", "7.0", "cu126"),     # Volta lost sm_70 in the 2.11 cu128 build
    ("580.95.05", "2.10", "7.0", "cu128"),
])
def test_best_torch_variant(driver, torch, cc, best):
    assert compat.best_torch_variant(driver, torch, cc) == best


@pytest.mark.parametrize("cc, arch, ok", [
    ("8.9", ["sm_80", "sm_86"], True),            # same major, newer minor runs sm_86 cubins
    ("12.0", ["sm_90", "sm_100"], False),         # Blackwell consumer: no fallback across majors
    ("12.0", ["sm_90", "compute_90"], True),      # PTX JIT
    ("9.0", ["sm_90a"], True), ("10.0", ["sm_90a"], False),
    ("7.5", ["8.0", "8.6+PTX"], False), ("9.0", ["8.0", "8.6+PTX"], True),
    ("6.1", [], False), ("nonsense", ["sm_80"], False),
])
def test_arch_supported(cc, arch, ok):
    assert compat.arch_supported(cc, arch) is ok


@pytest.mark.parametrize("name, cc", [("NVIDIA GeForce RTX 5090", "12.0"), ("Quadro RTX 5000", "7.5"),
                                      ("NVIDIA RTX 6000 Ada Generation", "8.9"), ("Tesla P4", "6.1"),
                                      ("NVIDIA GH200 480GB", "9.0"), ("Voodoo 3", None)])
def test_gpu_names(name, cc):
    assert compat.gpu_compute_capability(name) == cc


def test_architectures_and_frameworks():
    assert compat.architecture("6.1")["last_driver_branch"] == "580"
    assert compat.driver_supports_gpu("595.71.05", "6.1") is False and compat.driver_supports_gpu("580.95.05", "6.1")
    assert compat.cuda_supports_cc("13.0", "7.0") is False and compat.cuda_supports_cc("12.9", "7.0") is True
    # release wheels of cu130 carry no PTX (pytorch PRs #175567, #188914); cu118 has no sm_61 (builder list)
    assert compat.torch_arch_list("2.13", "cu130")[-1] == "sm_120" and "sm_61" not in compat.torch_arch_list("2.7", "cu118")
    assert compat.torch_arch_list("2.15", "cu130") is None  # 2.15's builds are unknown: no row is borrowed
    row = compat.torch_release("2.15")
    assert (row["python_min"], row["python_max"]) == ("3.11", "3.15")
    assert compat.tensorflow_config("2.15.1") == {"version": "2.15.0", "python_min": "3.9", "python_max": "3.11",
                                                  "cudnn": "8.9", "cuda": "12.2"}
    assert compat.tensorflow_config("2.12", "windows") is None


# --- nvidia-smi parsers over the recorded outputs ---

def test_parse_query_and_garbage():
    gpus = nvidia_smi.parse_query((SMI / "a100-535" / "query.out").read_text())
    assert [g["pci_bus_id"] for g in gpus] == ["00000000:07:00.0", "00000000:0F:00.0"]
    assert nvidia_smi.parse_query((SMI / "garbage" / "query.out").read_text()) is None
    assert nvidia_smi.parse_query("0, NVIDIA X, GPU-1, lots, 1, 8.0, Disabled, Enabled, 0:0:0.0, 1.0") is None
    assert nvidia_smi.parse_query("") is None


@pytest.mark.parametrize("case, driver, cuda, name, memory", [
    ("a100-535", "535.104.05", "12.2", "NVIDIA A100-SXM4-80GB", (4, 81920)),
    ("h100-550", "550.54.15", "12.4", "NVIDIA H100 80GB HBM3", (1, 81559)),
    ("h200-580", "580.95.05", "13.0", "NVIDIA H200", (None, None)),   # MIG mode: memory N/A
    ("rtx4090-550", "550.40.07", "12.4", "NVIDIA GeForce RTX 4090", (812, 24564)),
    ("gtx1080-470", "470.182.03", "11.4", "NVIDIA GeForce ...", (342, 8119)),  # R470 truncates names
])
def test_parse_table(case, driver, cuda, name, memory):
    got_driver, got_cuda, gpus = nvidia_smi.parse_table((SMI / case / "table.out").read_text())
    assert (got_driver, got_cuda, gpus[0]["name"], (gpus[0]["memory_used_mib"], gpus[0]["memory_total_mib"])) == \
        (driver, cuda, name, memory)


def test_parse_table_r610_header_and_list_with_mig():
    header = "| NVIDIA-SMI 610.43.02              KMD Version: 610.43.02     CUDA UMD Version: 13.3     |"
    assert nvidia_smi.parse_table(header)[:2] == ("610.43.02", "13.3")
    (only,) = nvidia_smi.parse_list((SMI / "h200-580" / "list.out").read_text())
    assert only["name"] == "NVIDIA H200" and only["uuid"].startswith("GPU-5c7f")
    assert nvidia_smi.classify_failure((SMI / "no-driver" / "query.out").read_text()) == "driver-unreachable"
    assert nvidia_smi.classify_failure("Failed to initialize NVML: Driver/library version mismatch") == "version-mismatch"
    assert nvidia_smi.classify_failure("No devices were found") == "no-devices"


# --- the command ---

def test_compat_driver_json():
    proc = tbdoctor("compat", "--driver", "535.104.05", "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["schema"] == "tbdoctor.compat/1" and data["driver"]["full_support_cuda"] == "12.2"
    assert {f["cuda_major"]: f["supported"] for f in data["driver"]["cuda_families"]} == {"11": True, "12": True, "13": False}
    assert data["best"]["variant"] == "cu126" and data["best"]["index_url"].endswith("/whl/cu126")
    assert [v["variant"] for v in data["torch"][0]["variants"] if v["driver_ok"]] == ["cu126"]


def test_compat_gpu_text_and_cc_json():
    proc = tbdoctor("compat", "--gpu", "RTX 5090")
    assert proc.returncode == 0, proc.stderr
    assert "compute capability 12.0 (Blackwell)" in proc.stdout
    assert "Best: torch 2.14 cu132" in proc.stdout
    data = json.loads(tbdoctor("compat", "--cc", "12.0", "--json").stdout)
    by_release = {row["version"]: [v["variant"] for v in row["variants"] if v["gpu_ok"]] for row in data["torch"]}
    assert by_release["2.7"] == ["cu128"] and by_release["2.6"] == [] and by_release["2.8"] == ["cu128", "cu129"]


def test_compat_driver_that_ignores_the_gpu():
    proc = tbdoctor("compat", "--cc", "6.1", "--driver", "595.71.05", "--torch", "2.8")
    assert "Driver 595.71.05 ignores this GPU: install the R580 (legacy) driver branch" in proc.stdout
    assert "Best: none until a R580 driver runs this GPU" in proc.stdout


@pytest.mark.parametrize("args, message", [
    ((), "compat needs --driver, --gpu or --cc"),
    (("--driver", "banana"), "not a driver version"),
    (("--gpu", "Voodoo 3"), "not a GPU name tbdoctor knows"),
    (("--cc", "twelve"), "not a compute capability"),
    (("--driver", "535.104.05", "--torch", "0.1"), "not a torch release tbdoctor knows"),
    (("--gpu", "A100", "--cc", "8.0"), "pass one"),
])
def test_compat_bad_input_is_one_line_and_exit_2(args, message):
    proc = tbdoctor("compat", *args)
    assert proc.returncode == 2 and message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert "Traceback" not in proc.stderr


def test_kernel_module_version_texts():
    proprietary = "NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.104.05  Sat Aug 19 01:15:15 UTC 2023\n"
    open_module = "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  550.54.15  Release Build  (dvs-builder@U16)\n"
    assert os_gpus.parse_module_version(proprietary) == "535.104.05"
    assert os_gpus.parse_module_version(open_module) == "550.54.15"
    assert os_gpus.parse_module_version(None) is None and os_gpus.parse_module_version("garbage") is None


# --- corrections of the December 2026 audit (shared/research/kb-audit-2026-12.md) ---

@pytest.mark.parametrize("name, cc", [
    ("NVIDIA GeForce RTX 2050", "8.6"), ("Quadro K2000", "3.0"), ("Quadro K4000", "3.0"),
    ("NVIDIA GeForce GTX 780M", "3.0"), ("NVIDIA GeForce GTX 780", "3.5"), ("Quadro M1200", "5.0"),
    ("Quadro M2000M", "5.0"), ("Quadro M4000", "5.2"), ("NVIDIA T400", "7.5"), ("NVIDIA T1000 8GB", "7.5"),
    ("NVIDIA GeForce GTX 1630", "7.5"), ("NVIDIA GeForce GT 1030", "6.1"), ("NVIDIA GeForce MX570", "8.6"),
    ("NVIDIA RTX 4000 SFF Ada Generation", "8.9"), ("Tesla M10", "5.0"), ("Quadro K2200", "5.0"),
    ("NVIDIA Tegra X1", "5.3"), ("Tesla K10.G2.8GB", "3.0"), ("Tesla K40m", "3.5"), ("NVIDIA GeForce RTX 2060", "7.5"),
])
def test_gpu_names_audited(name, cc):
    assert compat.gpu_compute_capability(name) == cc


def test_xavier_needs_cuda_10_and_python_eol_is_october_1():
    assert compat.cuda_supports_cc("9.2", "7.2") is False and compat.cuda_supports_cc("10.0", "7.2") is True
    assert compat.cuda_supports_cc("9.2", "7.0") is True
    eol = tables.load("python")["eol"]
    assert [eol[f"3.{m}"] for m in range(10, 16)] == [f"{2016 + m}-10-01" for m in range(10, 16)]


def test_cuda_rows_added_and_rows_without_a_driver_never_match():
    assert compat.toolkit_driver("13.3") == "610.43.02" and compat.toolkit_driver("12.3.2") == "545.23.08"
    assert compat.toolkit_driver("13.4") is None  # released, driver not verified: unknown, not guessed
    assert compat.full_support_cuda("610.43.02") == "13.3" and compat.full_support_cuda("600.1") == "13.2"


def test_newer_than_knowledge():
    assert compat.kb_date() == tables.load("knowledge")["date"]
    assert compat.newest_known("driver") == "610.43.02" and compat.newest_known("cuda") == "13.5.0"
    assert compat.newer_than_kb("driver", "615.20") and not compat.newer_than_kb("driver", "610.99.01")
    assert compat.newer_than_kb("cuda", "13.6") and not compat.newer_than_kb("cuda", "13.5.1")
    assert compat.newer_than_kb("torch", "2.16.0+cu132") and not compat.newer_than_kb("torch", "2.15.0")
    assert compat.newer_than_kb("tensorflow", "2.22.0") and not compat.newer_than_kb("tensorflow", "2.21.0")
    assert compat.newer_than_kb("tensorboard", "2.22.0") and not compat.newer_than_kb("tensorboard", "2.21.0a20251023")
    assert not compat.newer_than_kb("torch", "banana")


def test_compat_old_driver_gets_the_newest_release_that_fits():
    """R470 runs CUDA 11.x: torch 2.7 cu118 is the answer, not "nothing fits" (only 2.14 was looked at)."""
    proc = tbdoctor("compat", "--driver", "470.82.01")
    assert proc.returncode == 0, proc.stderr
    assert "Best: torch 2.7 cu118: pip install 'torch==2.7.*' --index-url https://download.pytorch.org/whl/cu118" \
        in proc.stdout
    data = json.loads(tbdoctor("compat", "--driver", "470.82.01", "--cc", "6.1", "--json").stdout)
    assert (data["best"]["torch"], data["best"]["variant"]) == ("2.7", "cu118")
    assert data["knowledge_base"]["date"] == compat.kb_date()


def test_compat_says_when_a_version_is_newer_than_its_knowledge():
    proc = tbdoctor("compat", "--driver", "620.10.01")
    assert f"newer than tbdoctor's knowledge of {compat.kb_date()}" in proc.stdout
    proc = tbdoctor("compat", "--driver", "580.95.05", "--torch", "2.16")
    assert proc.returncode == 2 and f"newer than tbdoctor's knowledge of {compat.kb_date()}" in proc.stderr
    assert tbdoctor("--version").stdout.strip().endswith(f"(knowledge base of {compat.kb_date()})")
