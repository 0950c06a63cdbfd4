"""The published JSON Schemas: `tbdoctor schema`, and facts validated where they are read.

(Every JSON the other tests make the CLI print or write is checked against its schema
by conftest.tbdoctor.)"""

import json
import sys

import jsonschema
import pytest

from conftest import check_json, clean_env, dist, gpu_device, gpu_facts, make_facts, packages_facts, python_facts, \
    tbdoctor
from tbdoctor import schemas


def test_schema_lists_prints_and_refuses_an_unknown_name():
    listing = tbdoctor("schema")
    assert listing.returncode == 0
    assert [line.split()[:2] for line in listing.stdout.splitlines()] == \
        [[name, f"tbdoctor.{name}/1"] for name in schemas.NAMES]
    for name in schemas.NAMES:
        proc = tbdoctor("schema", name)
        schema = json.loads(proc.stdout)
        jsonschema.Draft202012Validator.check_schema(schema)
        assert proc.returncode == 0 and schema["title"] == f"tbdoctor.{name}/1"
    unknown = tbdoctor("schema", "reports")
    assert unknown.returncode == 2 and unknown.stdout == ""
    assert unknown.stderr.strip().splitlines() == [
        "tbdoctor: error: schema 'reports': unknown; one of report, verify, facts, bugreport, compat, logdir, fleet"]


def _facts(**change) -> dict:
    facts = make_facts(python=python_facts(), packages=packages_facts(dist("torch", "2.13.0")),
                       gpu=gpu_facts([gpu_device()]))
    for path, value in change.items():
        *parents, last = path.split("__")
        node = facts
        for key in parents:
            node = node[int(key) if key.isdigit() else key]
        node[last] = value
    return facts


@pytest.mark.parametrize("change, where", [
    # Before: internal error (TypeError in a rule), exit 3.
    ({"packages__distributions": {"torch": "2.13.0"}}, "packages.distributions: an object is not of type array"),
    # Before: accepted, exit 0, the GPU judged on a number.
    ({"gpu__gpus__0__compute_capability": 8.6},
     "gpu.gpus.0.compute_capability: 8.6 is not of type string or null"),
    ({"packages__distributions__0__version": 2.13}, "packages.distributions.0.version: 2.13 is not of type string"),
])
def test_facts_file_with_a_wrong_nested_type_is_a_one_line_error_naming_the_key(tmp_path, change, where):
    path = tmp_path / "facts.json"
    path.write_text(json.dumps(_facts(**change)))
    for command in ("check", "report"):
        proc = tbdoctor(command, "--facts", str(path))
        assert proc.returncode == 2 and proc.stdout == "", proc.stderr
        [line] = proc.stderr.strip().splitlines()
        assert line.startswith(f"tbdoctor: error: --facts {path}: does not match the tbdoctor.facts/1 schema: {where}")
    path.write_text(json.dumps(_facts()))
    assert tbdoctor("check", "--facts", str(path)).returncode in (0, 1)


def test_a_cache_entry_that_breaks_the_schema_is_a_miss(tmp_path):
    env = clean_env(TBDOCTOR_CACHE_DIR=str(tmp_path / "cache"))
    del env["TBDOCTOR_NO_CACHE"]
    only = ("--python", sys.executable, "--only", "python")
    first, _ = check_json(*only, env=env)
    [entry] = (tmp_path / "cache").glob("*.json")
    stored = json.loads(entry.read_text())
    stored["facts"]["python"]["sys_path"] = "not a list"  # a hand-edited entry, its fingerprint still right
    entry.write_text(json.dumps(stored))
    second, proc = check_json(*only, env=env)
    assert not any(note.startswith("facts from the cache") for note in second["notes"]), second["notes"]
    assert isinstance(second["facts"]["python"]["sys_path"], list) and "Traceback" not in proc.stderr
    third, _ = check_json(*only, env=env)  # the fresh facts replaced the broken entry
    assert any(note.startswith("facts from the cache") for note in third["notes"])
    assert first["facts"]["python"]["sys_path"] == third["facts"]["python"]["sys_path"]
