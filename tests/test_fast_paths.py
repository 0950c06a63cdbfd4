"""The shortcuts that make `check` fast give the answers of the slow ways they replace."""

from __future__ import annotations

import email
import shutil
import json
import subprocess
from importlib import metadata

from conftest import by_id, check_json, make_venv
from tbdoctor.payloads._common import parse_headers

FIELDS = ("Name", "Version", "Requires-Python", "Summary")


def _by_email(text: str):
    return email.message_from_string(text.replace("\r\n", "\n").split("\n\n", 1)[0] + "\n")


def _metadata_texts():
    """The METADATA / PKG-INFO of every distribution this interpreter and the system's see."""
    texts = [d.read_text("METADATA") or d.read_text("PKG-INFO") for d in metadata.distributions()]
    system = shutil.which("python3")
    if system:  # Debian's python3: egg-info PKG-INFO files with folded descriptions
        code = ("import json; from importlib import metadata; print(json.dumps([d.read_text('METADATA') "
                "or d.read_text('PKG-INFO') for d in metadata.distributions()]))")
        out = subprocess.run([system, "-I", "-c", code], capture_output=True, text=True, timeout=60).stdout
        texts += json.loads(out or "[]")
    return [t for t in texts if t]


CRAFTED = [
    "Metadata-Version: 2.1\r\nName: crlf\r\nVersion: 1.0\r\nRequires-Dist: a>=1\r\nRequires-Dist: b\r\n\r\nbody\n",
    "Metadata-Version: 1.2\nName: folded\nVersion: 2.0\nSummary: one\n  two\n        \n  three\nRequires-Python: >=3.8\n",
    "Name: no-version\nRequires-Dist: x ; python_version < '3.9'\n\nName: in-the-body\n",
]


def test_hand_parsed_metadata_headers_match_the_email_parser():
    texts = _metadata_texts() + CRAFTED
    assert len(texts) > 20
    for text in texts:
        ours, theirs = parse_headers(text), _by_email(text)
        for field in FIELDS:
            expected = theirs[field]
            assert ours[field] == (expected.strip() if expected is not None else None), (field, text[:200])
        assert ours.get_all("Requires-Dist") == ([r.strip() for r in theirs.get_all("Requires-Dist")]
                                                 if theirs.get_all("Requires-Dist") else None), text[:200]


def _protobuf(env):
    """A hand-made protobuf (one of the stack's distributions, whose RECORD is checked)."""
    info = env.add_dist("protobuf", "5.29.0", top_level="google", module_source="")
    files = ["google/protobuf/__init__.py", "google/protobuf/internal/__init__.py",
             "google/protobuf/internal/builder.py"]
    for rel in files:
        (env.site / rel).parent.mkdir(parents=True, exist_ok=True)
        (env.site / rel).write_text("")
    with open(info / "RECORD", "a") as fh:
        fh.write("".join(f"{rel},,\n" for rel in files))
    return env


def test_quick_looks_for_each_folder_and_the_full_check_for_each_file(tmp_path):
    env = _protobuf(make_venv(tmp_path))
    (env.site / "google/protobuf/internal/builder.py").unlink()
    report, _ = check_json("--python", str(env.python), "--quick", "--no-cache")
    assert not by_id(report, "numpy.incomplete-install")  # a file: the folders are all there
    assert report["facts"]["packages"]["integrity"]["protobuf"]["checked"] == "folders"
    report, _ = check_json("--python", str(env.python), "--no-cache")
    [finding] = by_id(report, "numpy.incomplete-install")
    assert finding["title"] == ("protobuf is incomplete: google/protobuf/internal/builder.py listed in RECORD "
                                "is missing")

    shutil.rmtree(env.site / "google/protobuf/internal")  # what an interrupted uninstall leaves
    report, _ = check_json("--python", str(env.python), "--quick", "--no-cache")
    [finding] = by_id(report, "numpy.incomplete-install")
    assert "listed in RECORD is missing (and 1 more)" in finding["title"]
    assert "--quick" in finding["detail"]


def test_only_tensorboard_runs_only_the_tensorboard_part_of_the_shared_probe(tmp_path):
    env = make_venv(tmp_path)
    report, _ = check_json("--python", str(env.python), "--only", "tensorboard", "--no-cache")
    facts = report["facts"]
    assert facts["probes"]["torch"]["section"] == "tensorboard"
    assert facts["tensorboard"]["installed"] is False
    assert "torch" not in facts and "tensorboardx" not in facts
