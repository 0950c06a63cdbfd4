"""Unit tests of the torch, tensorflow, jax, tensorboardx, tensorboard, numpy and
stack rules over hand-made facts."""

from __future__ import annotations

from conftest import dist, make_facts, packages_facts, python_facts
from tbdoctor import rules
from tbdoctor.findings import ERROR, INFO, OK, WARNING
from tbdoctor.rules import jax, numpy, pytorch, stack, tensorboard, tensorflow

PY = "/envs/x/bin/python"


def one(findings, finding_id):
    matching = [f for f in findings if f.id == finding_id]
    assert len(matching) == 1, [f.id for f in findings]
    return matching[0]


def torch_facts(**over):
    base = {"installed": True, "dist_version": "2.13.0+cpu", "import_ok": True, "import_error": None,
            "version": "2.13.0+cpu", "cuda": None, "hip": None, "cudnn": None, "cuda_available": False,
            "cuda_error": None, "device_count": 0, "devices": [], "arch_list": [], "nccl": None,
            "mps_available": False, "utils_tensorboard_ok": True, "utils_tensorboard_error": None}
    base.update(over)
    return base


def tb_facts(**over):
    base = {"installed": True, "distribution": "tensorboard", "version": "2.21.0", "import_ok": True,
            "import_error": None, "module_version": "2.21.0", "protos_error": None, "cli_error": None,
            "pkg_resources_ok": True, "script": {"on_path": "/envs/x/bin/tensorboard", "own": "/envs/x/bin/tensorboard",
                                                 "same": True, "shebang": PY, "scripts_dir": "/envs/x/bin"},
            "data_server": {"installed": True, "ok": True, "output": "rustboard 0.7.2"},
            "instances": {"dir": "/tmp/.tensorboard-info", "exists": True, "writable": True, "entries": []},
            "localhost": {"addresses": ["127.0.0.1", "::1"], "loopback": True}, "port": {"port": 6006, "free": True}}
    base.update(over)
    return base


def error(reason, line, tb="Traceback ...\n"):
    return {"reason": reason, "line": line, "traceback": tb}


def stack_packages(*extra):
    return packages_facts(dist("torch", "2.13.0+cpu"), dist("tensorboardX", "2.6.5", requires=["protobuf>=3.20"]),
                          dist("tensorboard", "2.21.0", requires=["protobuf!=4.24.0,<8.0.0,>=6.31.1"]),
                          dist("protobuf", "7.36.2"), dist("numpy", "2.4.6"), dist("setuptools", "84.2.1"), *extra)


def healthy(**over):
    data = dict(python=python_facts(), packages=stack_packages(), torch=torch_facts(),
                tensorboardx={"installed": True, "version": "2.6.5", "import_ok": True, "writer_ok": True,
                              "event_bytes": 142},
                tensorboard=tb_facts(), tensorflow={"installed": False}, jax={"installed": False},
                numpy={"numpy": "2.4.6", "protobuf": "7.36.2", "protobuf_implementation": "upb",
                       "dependents_total": 1, "dependents": [{"name": "pandas", "version": "3.0.6",
                                                               "modules": ["pandas"], "ok": True}]})
    data.update(over)
    return make_facts(**data)


def test_healthy_cpu_stack_has_no_problem():
    found = rules.evaluate(healthy())
    assert [f.id for f in found if f.is_problem] == []
    assert one(found, "torch.version").title == "torch 2.13.0+cpu (CPU build)"
    assert one(found, "tensorboardx.version").status == OK
    assert one(found, "numpy.version").detail.startswith("1 of 1 installed packages")


def test_unknown_probe_data_gives_no_finding():
    facts = make_facts(torch=None, tensorboard=None, tensorboardx=None, numpy=None, tensorflow=None, jax=None)
    for rule in pytorch.RULES + tensorflow.RULES + jax.RULES + tensorboard.RULES + numpy.RULES + stack.RULES:
        assert rule(facts) == []


def test_torch_import_failure_is_classified_and_traceback_only_verbose():
    facts = healthy(torch=torch_facts(import_ok=False, import_error=error(
        "undefined-symbol", "ImportError: libcusparse.so.12: undefined symbol: __nvJitLinkAddData_12_1", "FULL TB")))
    facts["python"]["environ"] = {"LD_LIBRARY_PATH": "/usr/local/cuda-12.1/lib64"}
    f = one(pytorch.version(facts), "torch.import-failed")
    assert f.status == ERROR and "undefined symbol: __nvJitLinkAddData_12_1" in f.title
    assert "shared library of another version" in f.detail and "FULL TB" not in f.detail + f.title
    assert f.verbose_detail == "FULL TB"
    assert f.fixes[0].command == "unset LD_LIBRARY_PATH"


def test_cuda_build_without_gpu_is_info_and_with_gpu_is_error():
    t = torch_facts(version="2.13.0+cu130", cuda="13.0", cudnn=91002, arch_list=["sm_75", "sm_90"],
                    cuda_error="Found no NVIDIA driver on your system.")
    assert one(pytorch.cuda_unavailable(healthy(torch=t, gpu={"gpus": []})), "torch.cuda-unavailable").status == INFO
    assert one(pytorch.cuda_unavailable(healthy(torch=t)), "torch.cuda-unavailable").status == INFO  # gpu unknown
    gpu = {"gpus": [{"name": "NVIDIA A100", "compute_capability": "8.0"}], "driver_version": "580.65.06"}
    busy = dict(t, cuda_error="CUDA error: all CUDA-capable devices are busy or unavailable")
    f = one(pytorch.cuda_unavailable(healthy(torch=busy, gpu=gpu)), "torch.cuda-unavailable")
    assert f.status == ERROR and "busy" in f.title
    assert "cuDNN 9.10" in one(pytorch.version(healthy(torch=t)), "torch.version").title


def test_utils_tensorboard_missing_tensorboard_is_left_to_tensorboard_missing():
    t = torch_facts(utils_tensorboard_ok=False, utils_tensorboard_error=error(
        "missing-module", "ModuleNotFoundError: No module named 'tensorboard'"))
    facts = healthy(torch=t, tensorboard={"installed": False})
    assert pytorch.utils_tensorboard(facts) == []
    assert one(tensorboard.tensorboard(facts), "tensorboard.missing").status == WARNING
    other = torch_facts(utils_tensorboard_ok=False, utils_tensorboard_error=error(
        "missing-module", "ModuleNotFoundError: No module named 'packaging'"))
    f = one(pytorch.utils_tensorboard(healthy(torch=other)), "torch.utils-tensorboard")
    assert f.status == ERROR and "`packaging`" in f.hint


def test_tensorboardx_missing_is_an_error_with_install_fix():
    f = one(tensorboard.tensorboardx(healthy(tensorboardx={"installed": False})), "tensorboardx.missing")
    assert f.status == ERROR and f.fixes[0].command == f"{PY} -m pip install tensorboardX"


def test_tensorboardx_writer_failure():
    x = {"installed": True, "version": "2.6", "import_ok": True, "writer_ok": False,
         "writer_error": error("other", "TypeError: only 0-dimensional arrays can be converted to Python scalars")}
    f = one(tensorboard.tensorboardx(healthy(tensorboardx=x)), "tensorboardx.write-failed")
    assert "0-dimensional" in f.title


def test_generic_family_rule_any_family_any_members():
    facts = healthy(packages=stack_packages(dist("tb-nightly", "2.21.0a20251023"), dist("tensorflow-cpu", "2.21.0"),
                                            dist("tensorflow", "2.21.0"), dist("tf-nightly", "2.22.0.dev1")))
    found = stack.duplicate_families(facts)
    tb = one(found, "tensorboard.duplicate-install")
    assert [x.kind for x in tb.fixes] == ["pip-uninstall", "pip-install"]
    assert tb.fixes[0].command == f"{PY} -m pip uninstall -y tensorboard tb-nightly"
    assert tb.fixes[1].packages == ("tensorboard==2.21.0",)
    tf = one(found, "tensorflow.duplicate-install")
    assert tf.fixes[0].packages == ("tensorflow", "tensorflow-cpu", "tf-nightly")
    assert tf.fixes[1].packages == ("tensorflow==2.21.0",)


def test_a_member_required_by_another_is_a_dependency_not_a_duplicate():
    pkgs = stack_packages(dist("tensorflow", "2.15.0", requires=["tensorflow-intel==2.15.0; platform_system == 'Windows'"]),
                          dist("tensorflow-intel", "2.15.0"))
    assert any(f.id == "tensorflow.duplicate-install" for f in stack.duplicate_families(healthy(packages=pkgs)))
    pkgs["marker_environment"] = dict(pkgs["marker_environment"], platform_system="Windows")
    assert stack.duplicate_families(healthy(packages=pkgs)) == []


def test_known_bad_pairs_fire_on_versions_and_absorb_the_import_failure():
    pkgs = stack_packages()
    pkgs["distributions"] = [d for d in pkgs["distributions"] if d["name"] != "tensorboard"] + [dist("tensorboard", "2.20.0")]
    cli = error("pkg-resources-missing", "ModuleNotFoundError: No module named 'pkg_resources'")
    facts = healthy(packages=pkgs, tensorboard=tb_facts(version="2.20.0", module_version="2.20.0", cli_error=cli))
    found = rules.evaluate(facts)
    f = one(found, "tensorboard.pkg-resources-missing")
    assert f.status == ERROR and "setuptools 84.2.1" in f.title and "TensorBoard 2.20.0" in f.title
    assert f.fixes[0].command == f"{PY} -m pip install 'tensorboard>=2.21'"
    assert "setuptools<82" in f.hint
    assert not [x for x in found if x.id == "tensorboard.import-failed"]


def test_protobuf_descriptor_pair_and_numpy_scalar_pair():
    pkgs = stack_packages()
    pkgs["distributions"] = [d for d in pkgs["distributions"] if d["name"] != "tensorboardX"] + [dist("tensorboardX", "2.5.1")]
    facts = healthy(packages=pkgs, tensorboardx={"installed": True, "version": "2.5.1", "import_ok": False,
                                                 "import_error": error("protobuf-gencode-too-old",
                                                                       "TypeError: Descriptors cannot be created directly.")})
    found = rules.evaluate(facts)
    assert one(found, "numpy.protobuf-too-new").fixes[0].packages == ("tensorboardX>=2.6.2.2",)
    assert one(found, "tensorboardx.numpy-scalar").status == ERROR
    assert not [x for x in found if x.id == "tensorboardx.import-failed"]


def test_protobuf_runtime_too_old_fix_satisfies_every_requirer():
    pkgs = stack_packages()
    pkgs["distributions"] = [d for d in pkgs["distributions"] if d["name"] != "protobuf"] + [dist("protobuf", "5.29.6")]
    facts = healthy(packages=pkgs, tensorboard=tb_facts(protos_error=error(
        "protobuf-runtime-too-old", "VersionError: Detected incompatible Protobuf Gencode/Runtime versions")))
    f = one(tensorboard.tensorboard(facts), "tensorboard.import-failed")
    assert f.fixes[0].packages == ("protobuf!=4.24.0,<8.0.0,>=3.20,>=6.31.1",)


def test_numpy_sweep_findings():
    deps = [{"name": "Bottleneck", "version": "1.3.7", "modules": ["bottleneck"], "ok": False, "reason": "numpy-abi",
             "line": "ImportError: numpy.core.multiarray failed to import", "traceback": "A module that was compiled..."},
            {"name": "crashy", "version": "1.0", "modules": ["crashy"], "ok": False, "reason": "crashed", "signal": 11,
             "line": "the import crashed (signal 11)", "traceback": ""},
            {"name": "pandas", "version": "3.0.6", "modules": ["pandas"], "ok": True}]
    facts = healthy(numpy={"numpy": "2.4.6", "protobuf": "7.36.2", "protobuf_implementation": "upb",
                           "dependents_total": 3, "dependents": deps})
    found = numpy.dependents(facts)
    abi = one(found, "numpy.abi-mismatch")
    assert abi.title.startswith("Bottleneck 1.3.7 was compiled for NumPy 1.x and cannot run with NumPy 2.4.6")
    assert abi.fixes[0].command == f"{PY} -m pip install --upgrade Bottleneck"
    crash = one(found, "numpy.import-failed")
    assert "crashy" in crash.title and "signal 11" in crash.title
    assert one(numpy.versions(facts), "numpy.version").detail.startswith("1 of 3")


def test_tensorboard_environment_checks():
    entries = [{"file": "/tmp/.tensorboard-info/pid-99.info", "pid": 99, "port": 6006, "logdir": "runs", "alive": False},
               {"file": "/tmp/.tensorboard-info/pid-7.info", "pid": 7, "port": 6006, "logdir": "logs", "alive": True}]
    tb = tb_facts(script={"on_path": "/other/bin/tensorboard", "own": "/envs/x/bin/tensorboard", "same": False,
                          "shebang": "/other/bin/python", "scripts_dir": "/envs/x/bin"},
                  instances={"dir": "/tmp/.tensorboard-info", "exists": True, "writable": True, "entries": entries},
                  localhost={"addresses": ["10.0.0.5"], "loopback": False},
                  port={"port": 6006, "free": False, "error": "OSError: [Errno 98] Address already in use"},
                  data_server={"installed": True, "ok": False, "error": error("other", "exit status 1")})
    found = rules.evaluate(healthy(tensorboard=tb))
    assert "/other/bin/python" in one(found, "tensorboard.script-elsewhere").title
    stale = one(found, "tensorboard.stale-instances")
    assert stale.fixes[0].command == "rm -r /tmp/.tensorboard-info/pid-99.info" and len(stale.fixes) == 1
    assert one(found, "tensorboard.localhost").status == WARNING
    port = one(found, "tensorboard.port-in-use")
    assert port.status == INFO and "pid 7" in port.title
    assert one(found, "tensorboard.data-server").status == WARNING


def test_partial_tensorboard_install_is_reported_once():
    tb = tb_facts(module_version="2.21.0a20251023")
    assert one(tensorboard.tensorboard(healthy(tensorboard=tb)), "tensorboard.version-mismatch").status == ERROR
    both = healthy(tensorboard=tb, packages=stack_packages(dist("tb-nightly", "2.21.0a20251023")))
    assert not [f for f in tensorboard.tensorboard(both) if f.id == "tensorboard.version-mismatch"]


def test_tensorflow_version_and_python_range():
    tf = {"installed": True, "distribution": "tensorflow-cpu", "dist_version": "2.21.0", "import_ok": True,
          "version": "2.21.0", "build": {"is_cuda_build": False}, "gpus": []}
    assert one(tensorflow.version(healthy(tensorflow=tf)), "tensorflow.version").title == \
        "TensorFlow 2.21.0 (tensorflow-cpu, CPU build)"
    assert tensorflow.python_supported(healthy(tensorflow=tf)) == []
    old_py = healthy(tensorflow=tf, python=python_facts(version_info=[3, 9, 18]))
    assert "3.10-3.13" in one(tensorflow.python_supported(old_py), "tensorflow.python-unsupported").title
    py314 = healthy(python=python_facts(version_info=[3, 14, 0]))
    assert "Python 3.14" in one(tensorflow.version(py314), "tensorflow.version").title
    broken = dict(tf, import_ok=False, import_error=error("numpy-abi", "AttributeError: _ARRAY_API not found"))
    assert one(tensorflow.version(healthy(tensorflow=broken)), "tensorflow.import-failed").status == ERROR


def test_jax_version_and_failure():
    ok = {"installed": True, "dist_version": "0.10.2", "jaxlib": "0.10.2", "import_ok": True, "version": "0.10.2",
          "backend": "cpu", "devices": ["TFRT_CPU_0"]}
    assert one(jax.version(healthy(jax=ok)), "jax.version").title == "jax 0.10.2 (jaxlib 0.10.2), backend cpu"
    bad = dict(ok, import_ok=False, import_error=error("missing-module", "ModuleNotFoundError: No module named 'jaxlib'"))
    assert one(jax.version(healthy(jax=bad)), "jax.import-failed").status == ERROR


def test_protobuf_python_implementation_is_info():
    facts = healthy(numpy={"numpy": "2.4.6", "protobuf": "3.20.3", "protobuf_implementation": "python",
                           "protobuf_env": "python", "dependents": []})
    assert "PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION" in one(numpy.protobuf(facts), "numpy.protobuf").title
