"""No planted secret survives in any output: a hypothesis property over
hand-made facts through every format, and the same end to end through the CLI."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings, strategies as st

from conftest import dist, make_facts, packages_facts, python_facts, tbdoctor
from tbdoctor import rules
from tbdoctor.findings import Report
from tbdoctor.render import FORMATS, bugreport, emit, redacted

# Alphanumeric (and '-'): no format escapes these, so "not in the text" is sound.
_token = st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-", min_size=12, max_size=40).filter(
    lambda s: any(c.isalpha() for c in s) and any(c.isdigit() for c in s))
_name = st.from_regex(r"\A[a-z][a-z0-9]{5,12}[0-9]\Z")


def planted(tokens, user, host, uuid, home_root) -> tuple[dict, list[str]]:
    """Facts with secrets in env vars, index URLs, paths under home, the host name and a GPU UUID."""
    home = f"{home_root}/{user}"
    gpu_uuid = f"GPU-{uuid}"
    exe = f"{home}/venvs/train/bin/python"
    site = f"{home}/venvs/train/lib/python3.11/site-packages"
    environ = {"HF_TOKEN": tokens[0], "WANDB_API_KEY": tokens[1], "PYTHONPATH": f"{home}/src",
               "PIP_INDEX_URL": f"https://{user}:{tokens[2]}@pypi.corp.example/simple",
               "PIP_EXTRA_INDEX_URL": f"https://mirror.example/simple?token={tokens[3]}"}
    python = python_facts(executable=exe, prefix=f"{home}/venvs/train", site_packages=site, environ=environ,
                          sys_path=[f"{home}/src", site],
                          pip={"installed": True, "version": "24.0", "config": {
                              "global.index-url": f"https://__token__:{tokens[4]}@gitlab.example/pypi/simple"}})
    facts = make_facts(python=python, packages=packages_facts(dist("torch", "2.4.1", location=site),
                                                              dist("tensorboardX", "2.6.2", location=site)),
                       system={"hostname": host, "user": user, "home": home, "os": "Linux-6.1"},
                       gpu={"driver_version": "550.54.15", "gpus": [{"index": 0, "name": "NVIDIA A100-SXM4-80GB",
                                                                     "uuid": gpu_uuid}]})
    facts["target"] = {"python": exe, "chosen_by": "VIRTUAL_ENV"}
    facts["torch"] = None
    facts["probes"]["torch"] = {"status": "failed", "section": "torch", "seconds": 1.0, "error": "exited with 1",
                                "stderr_tail": f"{host}: CUDA error on {gpu_uuid} (HF_TOKEN={tokens[0]}) "
                                               f"in {home}/venvs/train; key {tokens[1]}"}
    return facts, [*tokens, home, user, host, uuid]


def outputs(facts: dict, tmp_path) -> dict[str, str]:
    """Every output tbdoctor can make of these facts, through the code the CLI runs."""
    report = Report(target=facts["target"], findings=rules.evaluate(facts), facts=facts, tbdoctor_version="test")
    texts = {}
    for fmt in FORMATS:
        out = tmp_path / f"out.{fmt}"
        emit(report, fmt, output=str(out), strict=True, verbose=True)
        texts[fmt] = out.read_text()
    clean = redacted(report)
    texts["report"] = bugreport.to_markdown(clean)
    texts["report-json"] = bugreport.to_json(clean)
    return texts


def leaks(texts: dict[str, str], secrets: list[str]) -> list[tuple[str, str]]:
    found = []
    for fmt, text in texts.items():
        lowered, unescaped = text.lower(), text.replace("\\", "").lower()
        found += [(fmt, s) for s in secrets if s.lower() in lowered or s.lower() in unescaped]
    return found


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(tokens=st.lists(_token, min_size=5, max_size=5), user=_name, host=_name, uuid=st.uuids(),
       home_root=st.sampled_from(["/home", "/Users", "/data/home"]))
def test_no_planted_secret_survives_in_any_format(tmp_path, capsys, tokens, user, host, uuid, home_root):
    facts, secrets = planted(tokens, user, host, str(uuid), home_root)
    texts = outputs(facts, tmp_path)
    capsys.readouterr()  # emit also printed the console report
    assert set(texts) == {"rich", "json", "junit", "markdown", "github", "report", "report-json"}
    assert "HF_TOKEN" in texts["json"] and "~/venvs/train/bin/python" in texts["rich"]  # redacted, not dropped
    assert not leaks(texts, secrets)


def test_no_planted_secret_through_the_cli(tmp_path):
    tokens = ["hf_Qx7Lm2Vb9Tz4Kp1", "wandb0123456789abcdef", "pw9Zr8Yq7Xs6", "tok5Vn4Mb3Lc2", "glpat-8Hj2Kk3Ll4"]
    facts, secrets = planted(tokens, "alice42", "gpu-node-017", "5f1c1d5e-6a7b-4c3d-9e8f-0a1b2c3d4e5f", "/home")
    path = tmp_path / "facts.json"
    path.write_text(json.dumps(facts))
    texts = {}
    for fmt in FORMATS:
        proc = tbdoctor("check", "--facts", str(path), "--format", fmt, "-v")
        assert proc.returncode == 1, proc.stderr
        texts[fmt] = proc.stdout + proc.stderr
    for extra in ([], ["--json"]):
        proc = tbdoctor("report", "--facts", str(path), *extra)
        assert proc.returncode == 0, proc.stderr
        texts[f"report{extra}"] = proc.stdout + proc.stderr
    assert not leaks(texts, secrets)
    assert "<host>: CUDA error on GPU-<redacted>" in texts["rich"]
    assert "PIP_INDEX_URL" in texts["report[]"] and "https://<redacted>@pypi.corp.example/simple" in texts["report[]"]

    raw = tbdoctor("report", "--facts", str(path), "--no-redact")
    assert "/home/alice42/venvs/train/bin/python" in raw.stdout and "gpu-node-017" in raw.stdout
    assert not [t for t in tokens if t in raw.stdout]  # secrets go regardless


def test_generic_account_names_are_not_replaced_as_words():
    from tbdoctor.facts import Redactor
    r = Redactor({"system": {"home": "/home/user", "user": "user", "hostname": "ci"}})
    assert r.text("user site-packages in /home/user/.local, ci job") == "user site-packages in ~/.local, ci job"
    r = Redactor({"system": {"home": "/home/alice", "user": "alice", "hostname": "node7.lab"}})
    assert r.text("alice@node7.lab:/home/alice/x (alice-old, malice)") == "<user>@<host>:~/x (alice-old, malice)"
