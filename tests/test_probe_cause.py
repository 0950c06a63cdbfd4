"""The probes name the real cause: the user's own environment, crash and hang
attribution, installed-file integrity and broken .pth files (real venvs, real CLI)."""

from __future__ import annotations

from conftest import by_id, check_json, clean_env


def test_facts_hold_the_users_environment_not_tbdoctors_probe_settings(env):
    user = clean_env(TF_CLI_CONFIG_FILE="/etc/terraformrc", TF_VAR_region="eu", TF_FORCE_GPU_ALLOW_GROWTH="true",
                     PYTHONWARNINGS="default")
    for key in ("TF_CPP_MIN_LOG_LEVEL", "TF_ENABLE_ONEDNN_OPTS", "PYTHONIOENCODING", "PYTHONDONTWRITEBYTECODE"):
        user.pop(key, None)
    report, _ = check_json("--python", str(env.python), "--only", "python", env=user)
    environ = report["facts"]["python"]["environ"]
    assert environ["PYTHONWARNINGS"] == "default"  # the user's value, not tbdoctor's "ignore"
    assert environ["TF_FORCE_GPU_ALLOW_GROWTH"] == "true"
    for key in ("TF_CPP_MIN_LOG_LEVEL", "TF_ENABLE_ONEDNN_OPTS", "PYTHONIOENCODING", "PYTHONDONTWRITEBYTECODE",
                "TF_CLI_CONFIG_FILE", "TF_VAR_region"):  # tbdoctor's own settings; Terraform's variables
        assert key not in environ, key
