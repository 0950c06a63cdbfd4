"""`tbdoctor fleet` over a few hundred reports derived from a real `check --json`
run, varied as real fleets drift (driver, torch, GPUs), plus corrupt files."""

from __future__ import annotations

import copy
import json

import pytest

from conftest import check_json, make_venv, tbdoctor

N = 300
H100, A100 = "NVIDIA H100 80GB HBM3", "NVIDIA A100-SXM4-80GB"


def machine(i: int) -> dict:
    """What machine ``i`` has: most are alike, some drift."""
    old_driver = i % 25 == 3  # 12 machines
    return {
        "driver": "535.104.05" if old_driver else "550.54.15",
        "cuda": "12.2" if old_driver else "12.4",
        "gpus": 7 if i % 40 == 7 else 8,  # 8 machines lost a GPU
        "model": A100 if i >= 290 else H100,
        "torch": "2.3.0+cu121" if i in (5, 105) else "2.4.1+cu124",
    }


def vary(template: dict, i: int) -> dict:
    report = copy.deepcopy(template)
    facts, m = report["facts"], machine(i)
    facts["gpu"] = {"driver_version": m["driver"], "cuda_driver_version": m["cuda"],
                    "gpus": [{"index": k, "name": m["model"], "uuid": f"GPU-{i:08x}-0000-4000-8000-{k:012x}",
                              "memory_total_mib": 81559} for k in range(m["gpus"])]}
    facts["probes"]["gpu"] = {"status": "ok", "section": "gpu", "seconds": 0.05}
    for d in facts["packages"]["distributions"]:
        if d["name"] == "torch":
            d["version"] = m["torch"]
    facts["torch"] = {"version": m["torch"], "cuda": m["torch"][-3:-1] + "." + m["torch"][-1],
                      "cuda_available": True}
    return report


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    root = tmp_path_factory.mktemp("fleet")
    env = make_venv(root)
    for name, version in (("torch", "2.4.1+cu124"), ("tensorboardX", "2.6.2.2"), ("tensorboard", "2.17.1"),
                          ("numpy", "1.26.4"), ("protobuf", "4.25.3")):
        env.add_dist(name, version, module_source="")
    # The frameworks here are bare metadata (their facts are set per machine by vary()),
    # so the template probes only what does not import them.
    template, proc = check_json("--python", str(env.python), "--only", "python", "pip", "gpu", "cuda")
    assert proc.returncode == 0, template["checks"]
    out = root / "reports"
    (out / "rack2").mkdir(parents=True)
    for i in range(N):
        folder = out / "rack2" if i >= 150 else out
        (folder / f"gpu-{i:03d}.json").write_text(json.dumps(vary(template, i)))
    # One machine whose GPU probe failed, one that ran `check` with its own policy.
    failed = vary(template, 0)
    failed["facts"]["gpu"] = None
    failed["facts"]["probes"]["gpu"] = {"status": "failed", "section": "gpu", "seconds": 90.0,
                                        "error": "timed out after 90 s", "stderr_tail": ""}
    failed["checks"].append({"id": "probe.gpu", "section": "gpu", "status": "error",
                             "title": "The gpu probe timed out after 90 s", "fixes": []})
    (out / "gpu-hung.json").write_text(json.dumps(failed))
    own = vary(template, 1)
    own["checks"].append({"id": "policy.gpus", "section": "policy", "status": "error",
                          "title": "Policy requires at least 16 GPUs; 8 found", "fixes": []})
    (out / "gpu-own-policy.json").write_text(json.dumps(own))
    # Broken inputs: truncated mid-write, someone else's JSON, an empty file.
    (out / "gpu-truncated.json").write_text(json.dumps(vary(template, 2))[:3000])
    (out / "package.json").write_text('{"name": "dashboard", "version": "1.0.0"}')
    (out / "empty.json").write_text("")
    return out


def fleet_json(*args, **kwargs):
    proc = tbdoctor("fleet", "--json", *args, **kwargs)
    assert proc.returncode in (0, 1), proc.stderr
    return json.loads(proc.stdout), proc


def test_table_values_drift_and_skipped_files(reports):
    data, proc = fleet_json(str(reports))
    assert data["schema"] == "tbdoctor.fleet/1"
    assert len(data["machines"]) == N + 2
    assert {s["file"].rsplit("/", 1)[-1]: s["reason"].split(" (")[0] for s in data["skipped"]} == {
        "gpu-truncated.json": "not valid JSON", "empty.json": "not valid JSON",
        "package.json": "not a `tbdoctor check --json` report"}
    for name in ("gpu-truncated.json", "package.json", "empty.json"):
        assert f"skipped {reports}" in proc.stderr and name in proc.stderr
    rows = {m["machine"]: m for m in data["machines"]}
    assert rows["gpu-003"]["driver"] == "535.104.05" and rows["gpu-003"]["cuda"] == "12.2"
    assert rows["gpu-005"]["torch"] == "2.3.0+cu121" and rows["gpu-005"]["torch_cuda"] == "12.1"
    assert rows["gpu-295"]["gpu_model"] == A100 and rows["gpu-007"]["gpus"] == "7"
    assert rows["gpu-200"]["file"].endswith("rack2/gpu-200.json")  # directories are searched recursively
    hung = rows["gpu-hung"]
    assert (hung["driver"], hung["gpus"], hung["gpu_model"], hung["errors"]) == ("?", "?", "?", ["probe.gpu"])
    assert {k: rows["gpu-100"][k] for k in ("python", "tensorboardx", "tensorboard", "tensorflow")} == {
        "python": rows["gpu-000"]["python"], "tensorboardx": "2.6.2.2", "tensorboard": "2.17.1", "tensorflow": "-"}

    old = sum(1 for i in range(N) if machine(i)["driver"] == "535.104.05")
    # gpu-hung's driver is unknown; gpu-own-policy has the common one.
    assert data["drift"]["driver"] == {"550.54.15": N - old + 1, "535.104.05": old, "?": 1}
    assert data["drift"]["torch"] == {"2.4.1+cu124": N, "2.3.0+cu121": 2}
    assert data["drift"]["gpu_model"] == {H100: 292 - 1, A100: 10, "?": 1}
    assert set(data["drift"]) == {"driver", "cuda", "torch", "torch_cuda", "gpus", "gpu_model"}
    assert data["majority"]["driver"] == "550.54.15"
    # Drift alone is not a failure; the machine that ran `check` with a policy carries its violation.
    assert data["violating"] == ["gpu-own-policy"] and data["status"] == "fail" and proc.returncode == 1


def test_uniform_keys_decide_the_exit_code(reports):
    same = [str(p) for p in sorted(reports.glob("gpu-0[0-9][0-9].json"))[:20] if p.stem not in ("gpu-003", "gpu-005",
                                                                                               "gpu-007")]
    data, proc = fleet_json(*same, "--uniform", "driver", "torch", "numpy", "tensorboard")
    assert proc.returncode == 0 and data["uniform"] == {"driver": True, "torch": True, "numpy": True,
                                                         "tensorboard": True}
    data, proc = fleet_json(*same, str(reports / "gpu-003.json"), "--uniform", "driver", "numpy")
    assert proc.returncode == 1 and data["uniform"] == {"driver": False, "numpy": True}
    assert data["machines"][0]["numpy"] == "1.26.4"  # a package name works as a key


def test_policy_is_judged_on_every_machine(reports, tmp_path):
    policy = tmp_path / "tbdoctor.toml"
    policy.write_text('[require]\ndriver = ">=545"\ngpus = 8\npackages = { torch = ">=2.4" }\n')
    data, proc = fleet_json(str(reports), "--policy", str(policy))
    assert proc.returncode == 1
    bad = {i for i in range(N) if machine(i)["driver"] == "535.104.05" or machine(i)["gpus"] < 8
           or machine(i)["torch"].startswith("2.3.")}
    assert set(data["violating"]) == {f"gpu-{i:03d}" for i in bad} | {"gpu-hung", "gpu-own-policy"}
    rows = {m["machine"]: m for m in data["machines"]}
    assert rows["gpu-003"]["violations"] == ["Policy requires NVIDIA driver >=545; found 535.104.05"]
    assert rows["gpu-105"]["violations"] == ["Policy requires torch>=2.4; 2.3.0+cu121 is installed"]
    assert "the GPU count is unknown" in " ".join(rows["gpu-hung"]["violations"])


def test_plain_table_marks_drift(reports):
    proc = tbdoctor("fleet", str(reports), "--uniform", "driver")
    assert proc.returncode == 1
    lines = proc.stdout.splitlines()
    assert lines[0].split()[:4] == ["Machine", "Python", "Driver", "≠"]
    [row] = [line for line in lines if line.startswith("gpu-003 ")]
    assert "535.104.05 *" in row and "12.2 *" in row
    [row] = [line for line in lines if line.startswith("gpu-hung ")]
    assert row.endswith("probe.gpu")
    assert "drift in Driver: 550.54.15 ×289; 535.104.05 ×12; ? ×1" in proc.stdout
    assert "--uniform driver: DIFFERS (exit 1)" in proc.stdout
    assert "gpu-own-policy: Policy requires at least 16 GPUs; 8 found" in proc.stdout
    assert f"skipped {reports / 'package.json'}: not a `tbdoctor check --json` report" in proc.stdout
    assert proc.stdout.rstrip().endswith("FAIL")
    out = reports.parent / "fleet.txt"
    again = tbdoctor("fleet", str(reports), "--uniform", "driver", "--output", str(out))
    assert again.returncode == 1 and again.stdout == "" and out.read_text() == proc.stdout


def test_bad_inputs(tmp_path):
    (tmp_path / "junk.json").write_text("[1, 2")
    proc = tbdoctor("fleet", str(tmp_path))
    assert proc.returncode == 2 and "none of the files is a readable" in proc.stderr
    assert proc.stdout == "" and f"skipped {tmp_path / 'junk.json'}: not valid JSON" in proc.stderr  # no "PASS"
    proc = tbdoctor("fleet", str(tmp_path / "nothing-here"))
    assert proc.returncode == 2 and proc.stderr.strip() == f"tbdoctor: error: {tmp_path / 'nothing-here'}: no such file or directory"
    (tmp_path / "empty").mkdir()
    proc = tbdoctor("fleet", str(tmp_path / "empty"))
    assert proc.returncode == 2 and "no *.json reports" in proc.stderr
    (tmp_path / "p.toml").write_text("[require]\ngpus = 'x'\n")
    proc = tbdoctor("fleet", str(tmp_path), "--policy", str(tmp_path / "p.toml"))
    assert proc.returncode == 2 and "p.toml:2: key 'require.gpus'" in proc.stderr
