"""End-to-end tests of `tbdoctor check`: the real CLI against real (broken) venvs."""

from __future__ import annotations

import json
import os
import signal
import sys
import time

import pytest

from conftest import by_id, check_json, clean_env, ids, make_venv, tbdoctor


@pytest.fixture(scope="module")
def healthy(tmp_path_factory):
    env = make_venv(tmp_path_factory.mktemp("healthy"), with_pip=True)
    env.add_dist("alpha", "1.0", requires=["beta>=2"], module_source="")
    env.add_dist("beta", "2.1", module_source="")
    return env


def test_healthy_venv_reports_no_problem(healthy):
    report, proc = check_json("--python", str(healthy.path), "--only", "python", "pip")  # no frameworks here
    assert proc.returncode == 0
    assert report["schema"] == "tbdoctor.report/1"
    assert report["target"] == {"python": str(healthy.python), "chosen_by": "--python"}
    assert report["summary"]["error"] == 0 and report["summary"]["warning"] == 0, report["checks"]
    assert report["facts"]["python"]["env_kind"] == "venv"
    assert "pip.consistency" in ids(report, "ok")
    assert by_id(report, "python.interpreter")[0]["title"].startswith(f"Python {sys.version_info[0]}.")


def test_console_report_is_plain_when_piped(healthy):
    proc = tbdoctor("check", "--python", str(healthy.python), "--only", "python", "pip")
    assert proc.returncode == 0, proc.stderr
    assert "\x1b[" not in proc.stdout
    assert f"target {healthy.python} (chosen by --python)" in proc.stdout
    assert "[✓] Python: Python" in proc.stdout
    assert proc.stdout.rstrip().endswith("No issues found")


def test_virtual_env_variable_chooses_the_target(healthy):
    report, _ = check_json(env=clean_env(VIRTUAL_ENV=str(healthy.path)))
    assert report["target"]["chosen_by"] == "VIRTUAL_ENV"
    assert report["target"]["python"] == str(healthy.python)


def test_missing_requirement(env):
    env.add_dist("alpha", "1.0", requires=["beta>=2", "gamma; python_version < '3'"])
    report, proc = check_json("--python", str(env.python), "--quick")  # no beta on the index: pip would reject it
    assert proc.returncode == 1
    [finding] = by_id(report, "pip.missing-requirement")
    assert finding["status"] == "error"
    assert "alpha 1.0 requires beta>=2" in finding["detail"]
    assert finding["fixes"][0]["kind"] == "pip-install"
    assert "'beta>=2'" in finding["fixes"][0]["command"]
    assert "gamma" not in json.dumps(report["checks"])  # its marker does not apply


def test_version_conflict_names_both_sides_and_a_satisfying_fix(env):
    env.add_dist("tensorboard", "2.20.0", requires=["protobuf!=4.24.0,>=3.19.6"])
    env.add_dist("tensorboardx", "2.6.5", requires=["protobuf>=3.20"])
    env.add_dist("protobuf", "3.19.0")
    report, proc = check_json("--python", str(env.python))
    assert proc.returncode == 1
    [finding] = by_id(report, "pip.version-conflict")
    assert "tensorboard 2.20.0 requires protobuf!=4.24.0,>=3.19.6" in finding["detail"]
    assert "tensorboardx 2.6.5 requires protobuf>=3.20" in finding["detail"]
    assert "protobuf 3.19.0 is installed" in finding["detail"]
    assert finding["fixes"][0]["packages"] == ["protobuf!=4.24.0,>=3.19.6,>=3.20"]


def test_duplicate_dist_info_in_one_site_packages(env):
    env.add_dist("tensorboard", "2.19.0")
    env.add_dist("tensorboard", "2.21.0")
    report, proc = check_json("--python", str(env.python))
    assert proc.returncode == 1
    [finding] = by_id(report, "pip.duplicate-distribution")
    assert finding["status"] == "error"
    assert "2.19.0" in finding["title"] and "2.21.0" in finding["title"]
    kinds = [f["kind"] for f in finding["fixes"]]
    assert kinds == ["manual", "pip-install"]
    assert "tensorboard-2.19.0.dist-info" in finding["fixes"][0]["command"]
    assert finding["fixes"][1]["packages"] == ["tensorboard==2.21.0"]


def test_segfault_in_every_probe_is_reported_and_the_run_completes(env):
    # A .pth line runs at start-up: here it imports a module that dereferences NULL.
    (env.site / "crash_on_start.py").write_text("import ctypes\nctypes.string_at(0)\n")
    (env.site / "crash.pth").write_text("import crash_on_start\n")
    report, proc = check_json("--python", str(env.python), "--timeout", "30", env=None)
    assert proc.returncode == 1
    [finding] = by_id(report, "probe.python")  # the interpreter and its distributions: one process
    assert finding["status"] == "error"
    assert "crashed (SIGSEGV" in finding["title"]
    assert report["facts"]["python"] is None and report["facts"]["packages"] is None


def test_hanging_probe_is_killed_with_its_children(env, tmp_path):
    pidfile = tmp_path / "pids"
    (env.site / "hang_on_start.py").write_text(
        "import os, subprocess, sys, time\n"
        "if os.environ.get('TBD_HANG'):\n"
        f"    child = subprocess.Popen([sys.executable, '-S', '-c', 'import time; time.sleep(600)'])\n"
        f"    open({str(pidfile)!r}, 'a').write('%d %d\\n' % (os.getpid(), child.pid))\n"
        "    time.sleep(600)\n")
    (env.site / "hang.pth").write_text("import hang_on_start\n")
    # The target interpreter is validated with -S (no .pth), so only the probes hang.
    report, proc = check_json("--python", str(env.python), "--timeout", "2", "--only", "python", "pip",
                              env=clean_env(TBD_HANG="1"), timeout=60)
    assert proc.returncode == 1
    [finding] = by_id(report, "probe.python")
    assert "timed out after 2 s" in finding["title"]
    pids = [int(p) for p in pidfile.read_text().split()]
    assert len(pids) >= 2  # a (process, child) pair per target process: here the python probe's
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(p) for p in pids)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie waiting for its parent counts as gone.
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ")[1][0] != "Z"
    except OSError:
        return False


def test_garbage_output_is_a_probe_failure(env):
    # sys.stdout replaced at start-up: the probe's result line never appears.
    (env.site / "mute.py").write_text("import os, sys\nsys.stdout = open(os.devnull, 'w')\n")
    (env.site / "mute.pth").write_text("import mute\n")
    report, proc = check_json("--python", str(env.python))
    assert proc.returncode == 1
    assert "printed no parseable result" in by_id(report, "probe.python")[0]["title"]


def test_secrets_never_reach_the_output(env):
    secret_env = clean_env(HF_TOKEN="hf_s3cr3t_value", PYTHONPATH="/nowhere",
                           PIP_INDEX_URL="https://alice:pa55word@pypi.example.com/simple")
    proc = tbdoctor("check", "--json", "--python", str(env.python), env=secret_env)
    assert proc.returncode in (0, 1), proc.stderr
    for secret in ("hf_s3cr3t_value", "pa55word", "alice:"):
        assert secret not in proc.stdout
    facts = json.loads(proc.stdout)["facts"]
    assert facts["python"]["environ"]["HF_TOKEN"] == "<redacted>"
    assert "https://<redacted>@pypi.example.com/simple" in facts["python"]["environ"]["PIP_INDEX_URL"]
    console = tbdoctor("check", "-v", "--python", str(env.python), env=secret_env)
    assert "pa55word" not in console.stdout and "hf_s3cr3t_value" not in console.stdout


def test_pythonpath_and_a_source_checkout_shadowing_a_package(env, tmp_path):
    env.add_dist("tensorboard", "2.21.0", module_source="")
    checkout = tmp_path / "src"
    (checkout / "tensorboard").mkdir(parents=True)
    (checkout / "tensorboard" / "__init__.py").write_text("")
    report, _ = check_json("--python", str(env.python), env=clean_env(PYTHONPATH=str(checkout)))
    assert by_id(report, "python.pythonpath")[0]["status"] == "warning"
    [shadow] = by_id(report, "python.shadowed-module")
    assert shadow["status"] == "error"
    assert str(checkout / "tensorboard") in shadow["title"]
    # The same folder in the current directory only affects runs from there: a warning.
    report, _ = check_json("--python", str(env.python), cwd=checkout)
    [shadow] = by_id(report, "python.shadowed-module")
    assert shadow["status"] == "warning" and "current directory" in shadow["detail"]


def test_venv_without_pip_is_a_warning_not_a_failure(env):
    report, proc = check_json("--python", str(env.python), "--only", "python", "pip")
    assert proc.returncode == 0
    [finding] = by_id(report, "pip.installed")
    assert finding["status"] == "warning"
    assert finding["fixes"][0]["command"].endswith("-m ensurepip --upgrade")


def test_save_facts_then_rerun_rules_without_probing(env, tmp_path):
    env.add_dist("alpha", "1.0", requires=["beta"])
    saved = tmp_path / "facts.json"
    first, _ = check_json("--python", str(env.python), "--save-facts", str(saved))
    env.add_dist("beta", "1.0")  # the environment changes; the snapshot does not
    again, proc = check_json("--facts", str(saved))
    assert proc.returncode == 1
    assert ids(again) == ids(first)
    assert again["notes"][0].startswith(f"facts loaded from {saved}")


def test_only_ignore_and_strict(env):
    report, proc = check_json("--python", str(env.python), "--only", "pip", "--ignore", "pip.installed")
    assert {c["section"] for c in report["checks"]} == {"pip"}
    assert by_id(report, "pip.installed")[0]["status"] == "skipped"
    assert proc.returncode == 0
    strict = tbdoctor("check", "--python", str(env.python), "--strict", "--only", "python", "pip")
    assert strict.returncode == 1  # the pip warning fails a strict run
    assert tbdoctor("check", "--python", str(env.python), "--strict", "--only", "python", "pip",
                    "--ignore", "pip.*").returncode == 0


@pytest.mark.parametrize("args, message", [
    (["check", "--python", "/no/such/python"], "no such file or directory"),
    (["check", "--python", os.devnull], "not a working Python interpreter"),
    (["check", "--python", sys.executable.replace("python", "nopython")], "no such file"),
    (["check", "--only", "gpuz"], "unknown section"),
    (["check", "--timeout", "-3"], "must be a positive number"),
    (["check", "--timeout", "soon"], "invalid float value"),
    (["check", "--facts", "/no/such/facts.json"], "cannot read"),
    (["check", "--facts", __file__], "not valid JSON"),
    (["check", "--facts", sys.executable], "--facts"),
    (["check", "--save-facts", "/no/such/dir/facts.json", "--python", sys.executable], "cannot write"),
    (["frobnicate"], "invalid choice"),
    ([], "no command given"),
])
def test_bad_input_is_one_line_and_exit_2(args, message):
    proc = tbdoctor(*args)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], proc.stderr


def test_directory_without_interpreter_is_a_usage_error(tmp_path):
    proc = tbdoctor("check", "--python", str(tmp_path))
    assert proc.returncode == 2
    assert "has no bin/python" in proc.stderr


def test_facts_from_another_tool_are_refused(tmp_path):
    foreign = tmp_path / "other.json"
    foreign.write_text(json.dumps({"schema": "something/9"}))
    proc = tbdoctor("check", "--facts", str(foreign))
    assert proc.returncode == 2 and "not a tbdoctor facts snapshot" in proc.stderr


def test_help_and_version():
    assert tbdoctor("--version").stdout.startswith("tbdoctor ")
    helptext = tbdoctor("--help").stdout
    assert "check" in helptext
    assert "--save-facts" in tbdoctor("check", "--help").stdout


def test_interrupt_exits_130_without_traceback(env):
    import subprocess
    from conftest import _BOOT
    started = env.path / "probe-started"
    (env.site / "slow.py").write_text(f"import pathlib, time\npathlib.Path({str(started)!r}).touch()\ntime.sleep(30)\n")
    (env.site / "slow.pth").write_text("import slow\n")
    proc = subprocess.Popen([sys.executable, "-c", _BOOT, "check", "--python", str(env.python)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=clean_env())
    for _ in range(600):  # Ctrl-C while a probe runs (not while tbdoctor itself is still starting)
        if started.exists():
            break
        time.sleep(0.1)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "Traceback" not in err


def test_an_editable_install_is_not_shadowed_by_its_own_project_folder(env, tmp_path):
    project = tmp_path / "project"
    (project / "mylib").mkdir(parents=True)
    (project / "mylib" / "__init__.py").write_text("")
    info = env.add_dist("mylib", "0.1")
    (info / "top_level.txt").write_text("mylib\n")
    (info / "direct_url.json").write_text(json.dumps({"url": project.as_uri(), "dir_info": {"editable": True}}))
    (env.site / "_mylib_editable.pth").write_text(str(project) + "\n")
    report, _ = check_json("--python", str(env.python), "--only", "python", cwd=project)
    assert "python.shadowed-module" not in ids(report)
    (info / "direct_url.json").unlink()  # the same layout without the editable marker is a real shadow
    report, _ = check_json("--python", str(env.python), "--only", "python", cwd=project)
    assert "python.shadowed-module" in ids(report)


def test_an_ascii_only_terminal_gets_ascii_glyphs_not_a_crash(healthy):
    proc = tbdoctor("check", "--python", str(healthy.python), "--only", "python", "pip",
                    env=clean_env(PYTHONIOENCODING="ascii"))
    assert proc.returncode == 0, proc.stderr
    assert "[+] Python" in proc.stdout and "Traceback" not in proc.stderr


def test_pip_configuration_files_and_variables_are_reported_redacted(healthy, tmp_path):
    conf = tmp_path / "pip.conf"
    conf.write_text("[global]\nindex-url = https://alice:s3cretpw@pypi.example.com/simple\n"
                    "[install]\nfind-links = /srv/wheels\n")
    report, _ = check_json("--python", str(healthy.python), "--only", "pip",
                           env=clean_env(PIP_CONFIG_FILE=str(conf), PIP_CONSTRAINT="/srv/constraints.txt"))
    [config] = by_id(report, "pip.config")
    assert "global.index-url = https://<redacted>@pypi.example.com/simple" in config["title"]
    assert "install.find-links = /srv/wheels" in config["title"]
    assert ":env:.constraint = /srv/constraints.txt" in config["title"]
    assert "s3cretpw" not in json.dumps(report)
