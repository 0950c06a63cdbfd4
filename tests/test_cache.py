"""The facts cache: reused while nothing changed, invalidated by any change that matters."""

from conftest import check_json, clean_env, ids

ONLY = ("--only", "python", "pip")  # these venvs hold no framework (tensorboardX missing would be an error)


def cached_env(tmp_path, **extra):
    env = clean_env(TBDOCTOR_CACHE_DIR=str(tmp_path / "cache"), **extra)
    del env["TBDOCTOR_NO_CACHE"]
    return env


def from_cache(report) -> bool:
    return any(note.startswith("facts from the cache") for note in report["notes"])


def test_repeated_check_is_answered_from_the_cache_until_something_changes(env, tmp_path):
    env.add_dist("alpha", "1.0", requires=["beta"])
    first, _ = check_json("--python", str(env.python), *ONLY, env=cached_env(tmp_path))
    assert not from_cache(first)
    second, _ = check_json("--python", str(env.python), *ONLY, env=cached_env(tmp_path))
    assert from_cache(second)
    assert ids(second) == ids(first) and second["facts"] == first["facts"]

    env.add_dist("beta", "1.0")  # an install invalidates the entry
    third, proc = check_json("--python", str(env.python), *ONLY, env=cached_env(tmp_path))
    assert not from_cache(third) and "pip.missing-requirement" not in ids(third)
    assert proc.returncode == 0

    changed_var, _ = check_json("--python", str(env.python), *ONLY, env=cached_env(tmp_path, CUDA_VISIBLE_DEVICES="1"))
    assert not from_cache(changed_var)
    bypassed, _ = check_json("--python", str(env.python), *ONLY, "--no-cache", env=cached_env(tmp_path, CUDA_VISIBLE_DEVICES="1"))
    assert not from_cache(bypassed)
    again, _ = check_json("--python", str(env.python), *ONLY, env=cached_env(tmp_path, CUDA_VISIBLE_DEVICES="1"))
    assert from_cache(again)


def test_quick_after_a_full_check_says_the_framework_results_came_from_the_cache(env, tmp_path):
    only = ("--only", "python", "torch")
    quick, _ = check_json("--python", str(env.python), *only, "--quick", env=cached_env(tmp_path))
    assert not from_cache(quick) and quick["facts"]["probes"]["torch"]["status"] == "skipped"
    assert any(note.startswith("--quick: skipped the framework imports (torch") for note in quick["notes"])
    full, _ = check_json("--python", str(env.python), *only, env=cached_env(tmp_path))
    assert not from_cache(full)  # a --quick snapshot is incomplete: never cached
    again, _ = check_json("--python", str(env.python), *only, "--quick", env=cached_env(tmp_path))
    assert from_cache(again) and again["facts"]["probes"]["torch"]["status"] == "ok"
    assert not any("skipped the framework imports" in note for note in again["notes"]), again["notes"]
    assert any(note.startswith("--quick: nothing skipped: the framework results (torch") for note in again["notes"])


def test_failed_probes_are_never_cached(env, tmp_path):
    (env.site / "mute.py").write_text("import os, sys\nsys.stdout = open(os.devnull, 'w')\n")
    (env.site / "mute.pth").write_text("import mute\n")
    for _ in range(2):
        report, _ = check_json("--python", str(env.python), *ONLY, env=cached_env(tmp_path))
        assert not from_cache(report) and "probe.python" in ids(report)


def test_an_unwritable_cache_is_not_an_error(env, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    env_vars = clean_env(TBDOCTOR_CACHE_DIR=str(blocker / "cache"))
    del env_vars["TBDOCTOR_NO_CACHE"]
    report, proc = check_json("--python", str(env.python), *ONLY, env=env_vars)
    assert proc.returncode == 0 and not from_cache(report)


def test_every_variable_the_probes_record_invalidates_the_cache(env, tmp_path):
    first, _ = check_json("--python", str(env.python), "--only", "python", env=cached_env(tmp_path))
    again, _ = check_json("--python", str(env.python), "--only", "python", env=cached_env(tmp_path))
    assert from_cache(again)
    moved, _ = check_json("--python", str(env.python), "--only", "python",
                          env=cached_env(tmp_path, PYENV_ROOT=str(tmp_path / "pyenv")))
    assert not from_cache(moved)
    assert moved["facts"]["python"]["environ"]["PYENV_ROOT"] == str(tmp_path / "pyenv")
