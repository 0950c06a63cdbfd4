"""Every installable pair of checks/known_bad.toml reproduced for real: the bad versions
are installed (``pip install --no-deps --target``, shadowing the shared stack venv
through PYTHONPATH) and the call that breaks is run; the first fixed version runs it
fine. Each case also asserts that the knowledge base fires on the bad versions and not
on the fixed ones, so a wrong cut-off fails here.

Not reproducible in this suite: the two torch pairs (torch < 2.3 + NumPy 2, torch 1.9-1.10
+ setuptools >= 59.6) need another torch than the one the suite may install.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from uv import find_uv_bin

from conftest import by_id, check_json, dist, ids, layered_venv, make_facts, packages_facts, pip_install
from tbdoctor.rules import common, stack

pytestmark = pytest.mark.slow

# --target folder -> what is installed in it (always --no-deps: the stack venv has the rest)
TARGETS = {
    "tb-2.11.2": "tensorboard==2.11.2", "tb-2.12.0": "tensorboard==2.12.0",
    "tb-2.17.0": "tensorboard==2.17.0", "tb-2.17.1": "tensorboard==2.17.1",
    "tb-2.20.0": "tensorboard==2.20.0", "tb-nightly": "tb-nightly==2.21.0a20251023",
    "tbx-2.5.1": "tensorboardX==2.5.1", "tbx-2.6": "tensorboardX==2.6",
    "tbx-2.6.1": "tensorboardX==2.6.1", "tbx-2.6.2.2": "tensorboardX==2.6.2.2",
    "setuptools-81": "setuptools<82",
}

SCALAR = ("import numpy, tempfile; from tensorboardX import SummaryWriter; w = SummaryWriter(tempfile.mkdtemp()); "
          "w.add_scalar('x', numpy.array([2.0]), 1); w.close()")
IMAGE = ("import numpy, tempfile; from tensorboardX import SummaryWriter; w = SummaryWriter(tempfile.mkdtemp()); "
         "w.add_image('i', numpy.zeros((3, 8, 8)), 0); w.close()")
PKG_RESOURCES = "from tensorboard import default"
PROTOS = "from tensorboard.compat.proto import summary_pb2"
PURE_PROTOBUF = {"PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION": "python"}  # lets tensorboardX 2.5 import at all

# (pair id, bad --target folders, fixed folders, the failing call, its error, extra environment)
CASES = [
    ("tensorboard.numpy2-incompatible", ["tb-2.17.0"], ["tb-2.17.1"],
     "from tensorboard.util import tensor_util; tensor_util.make_tensor_proto(['a'])",
     "AttributeError: `np.string_` was removed in the NumPy 2.0 release", {}),
    ("tensorboardx.numpy-scalar", ["tbx-2.6.1"], ["tbx-2.6.2.2"], SCALAR,
     "TypeError: only 0-dimensional arrays can be converted to Python scalars", {}),
    ("tensorboard.pkg-resources-missing", ["tb-2.20.0"], ["setuptools-81", "tb-2.20.0"], PKG_RESOURCES,
     "ModuleNotFoundError: No module named 'pkg_resources'", {}),
    ("tensorboard.pkg-resources-missing", ["tb-nightly"], ["setuptools-81", "tb-nightly"], PKG_RESOURCES,
     "ModuleNotFoundError: No module named 'pkg_resources'", {}),
    ("numpy.protobuf-too-new", ["tbx-2.6"], ["tbx-2.6.1"], "import tensorboardX",
     "TypeError: Descriptors cannot be created directly", {}),
    ("numpy.protobuf-too-new", ["tb-2.11.2"], ["tb-2.12.0"], PROTOS,
     "TypeError: Descriptors cannot be created directly", {}),
    ("tensorboardx.pillow-antialias", ["tbx-2.5.1"], ["tbx-2.6"], IMAGE,
     "AttributeError: module 'PIL.Image' has no attribute 'ANTIALIAS'", PURE_PROTOBUF),
]


@pytest.fixture(scope="module")
def targets(stack_env, tmp_path_factory):
    """Each TARGETS folder, installed with --no-deps (the stack venv has the rest)."""
    root = tmp_path_factory.mktemp("known-bad")
    uv = find_uv_bin()  # uv: a tenth of pip's time for eleven small installs
    for name, spec in TARGETS.items():
        subprocess.run([uv, "pip", "install", "-q", "--no-deps", "--python", str(stack_env.python),
                        "--target", str(root / name), spec], check=True, capture_output=True, timeout=600)
    return root


def _run(stack_env, folders, code, extra):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(extra, PYTHONPATH=os.pathsep.join(str(f) for f in folders), PYTHONWARNINGS="ignore")
    listing = ("import importlib.metadata as m, json; "
               "print(json.dumps([[d.metadata['Name'], d.version] for d in m.distributions()]))")
    seen = subprocess.run([str(stack_env.python), "-c", listing], env=env, capture_output=True, text=True,
                          timeout=120, check=True)
    run = subprocess.run([str(stack_env.python), "-c", code], env=env, capture_output=True, text=True, timeout=300)
    return run, json.loads(seen.stdout)


def _fired(distributions) -> set[str]:
    """The known-bad pair ids the rules fire for these installed versions (first on sys.path wins)."""
    facts = make_facts(packages=packages_facts(*(dist(name, version) for name, version in distributions)))
    return {pair["id"] for pair, _ in common.fired_pairs(facts)}


@pytest.mark.parametrize("pair_id, bad, fixed, code, error, extra", CASES,
                         ids=[f"{c[0]}[{c[1][0]}]" for c in CASES])
def test_known_bad_pair_is_real_and_its_fix_works(stack_env, targets, pair_id, bad, fixed, code, error, extra):
    broken, seen = _run(stack_env, [targets / f for f in bad], code, extra)
    assert broken.returncode != 0 and error in broken.stderr, broken.stderr[-2000:]
    assert pair_id in _fired(seen)
    works, seen = _run(stack_env, [targets / f for f in fixed], code, extra)
    assert works.returncode == 0, works.stderr[-2000:]
    assert pair_id not in _fired(seen)


def test_tensorboardx_numpy_scalar_is_named_and_tensorflows_pin_is_kept(stack_env, tmp_path):
    """tensorboardX 2.6.1 + NumPy 2.4: the finding names NumPy and the fix (not "the import
    raised an error"); with TensorFlow 2.20 pinning tensorboard~=2.20.0, the pkg_resources fix
    is setuptools<82, not tensorboard>=2.21 (which would break that pin)."""
    env = layered_venv(tmp_path, stack_env)
    pip_install(env, "--no-deps", "tensorboardX==2.6.1", "tensorboard==2.20.0")
    env.add_dist("tensorflow", "2.20.0", requires=["tensorboard~=2.20.0"])  # its metadata is what pins
    report, proc = check_json("--python", str(env.python))
    [scalar] = by_id(report, "tensorboardx.numpy-scalar")
    assert scalar["status"] == "error" and "NumPy 2.4" in scalar["title"] and "add_scalar" in scalar["title"]
    assert [f["packages"] for f in scalar["fixes"]] == [["tensorboardX>=2.6.2.2"]] and "numpy<2.4" in scalar["hint"]
    assert "tensorboardx.write-failed" not in ids(report)  # no "Why: the import raised an error"
    assert report["facts"]["tensorboardx"]["writer_error"]["reason"] == "numpy-array-scalar"
    [pkg] = by_id(report, "tensorboard.pkg-resources-missing")
    assert [f["packages"] for f in pkg["fixes"]] == [["setuptools<82"]]
    assert "tensorflow 2.20.0 requires tensorboard~=2.20.0" in pkg["hint"]
    pip_install(env, "--no-deps", "tensorboardX>=2.6.2.2")  # the fix the finding gives
    after, _ = check_json("--python", str(env.python))
    assert "tensorboardx.numpy-scalar" not in ids(after) and by_id(after, "tensorboardx.version")[0]["status"] == "ok"
    assert after["knowledge_base"]["date"]  # every report says how old its knowledge is


@pytest.mark.parametrize("nightly, fires", [("2.21.0a20251023", True), ("2.21.0a20260201", True),
                                            ("2.21.0a20260304", True), ("2.21.0a20260305", False)])
def test_tb_nightly_cutoff_is_the_day_after_pr_7057(nightly, fires):
    """PR #7057 (no more `import pkg_resources`) was merged on 2026-03-04; PyPI keeps no nightly
    after 2.21.0a20251023, so the later ones are checked on their version numbers only."""
    assert ("tensorboard.pkg-resources-missing" in _fired([("tb-nightly", nightly), ("setuptools", "82.0.1")])) is fires


@pytest.mark.parametrize("pins, fix", [
    ([], ["tensorboard>=2.17.1"]),
    ([("tensorflow", "2.16.2", ["tensorboard<2.17,>=2.16"])], ["numpy<2"]),    # TF 2.16 pins tensorboard 2.16
    ([("tensorflow", "2.17.1", ["tensorboard<2.18,>=2.17"])], ["tensorboard>=2.17.1"]),  # 2.17.1 fits that pin
])
def test_numpy2_fix_keeps_tensorflows_pin(pins, fix):
    dists = [dist("tensorboard", "2.16.2"), dist("numpy", "2.4.6")] + [dist(n, v, requires=r) for n, v, r in pins]
    [f] = [f for f in stack.known_bad_pairs(make_facts(packages=packages_facts(*dists)))
           if f.id == "tensorboard.numpy2-incompatible"]
    assert list(f.fixes[0].packages) == fix


def test_every_pair_is_well_formed():
    from packaging.requirements import Requirement
    from packaging.specifiers import SpecifierSet
    from tbdoctor import tables
    for pair in tables.load("known_bad")["pair"]:
        assert pair["source"] and pair["status"] in ("error", "warning") and pair["title"] and pair["detail"]
        assert all(SpecifierSet(spec) for spec in pair["when"].values())
        assert all(Requirement(r) for r in pair["fix"] + pair.get("fallback", []))
        assert pair.get("explains", "other") in common.REASONS


@pytest.mark.parametrize("a, b, overlap", [
    (">=2.21", "~=2.20.0", False), (">=2.21", ">=2.19", True), (">=2.17.1", "<2.17,>=2.16", False),
    (">=2.17.1", "<2.18,>=2.17", True), ("<82", ">=40", True), ("<2.4", "==2.4.*", False), (">2.21", "<2.23", True),
])
def test_pin_overlap(a, b, overlap):
    from packaging.specifiers import SpecifierSet
    from tbdoctor.rules.common import _overlap
    assert _overlap(SpecifierSet(a), SpecifierSet(b)) is overlap
