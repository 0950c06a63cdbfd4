"""The facts cache: a repeated ``check`` of an unchanged environment reuses facts.

An entry is keyed on the target interpreter and valid while its fingerprint
matches: the target's sys.path folders and the distributions in them (any
install, uninstall or upgrade), the environment variables the probes read, the
NVIDIA driver version, the tools on PATH, the current directory, tbdoctor's
version and payloads. Entries older than MAX_AGE are ignored too, since some
facts (ports in use, running TensorBoards) change without any of that.
Only complete snapshots (every probe ok) are stored.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from importlib import resources
from pathlib import Path

from tbdoctor import __version__, files, redact
from tbdoctor import facts as facts_mod
from tbdoctor.probe import ENV_PREFIXES
from tbdoctor.target import Target

MAX_AGE = 3600.0  # seconds
_TOOLS = ("nvidia-smi", "nvcc", "rocm-smi", "tensorboard", "uv")


def cache_dir() -> Path:
    override = os.environ.get("TBDOCTOR_CACHE_DIR")
    if override:
        return Path(override)
    import platformdirs
    return Path(platformdirs.user_cache_dir("tbdoctor")) / "facts"  # both parts created 0700 (files.private_dir)


def _host_state() -> list[str]:
    """What the host probes depend on, cheaply: env, tools on PATH, driver version, cwd."""
    state = [__version__, os.getcwd()]
    state += [f"{k}={v}" for k, v in sorted(os.environ.items()) if k.startswith(ENV_PREFIXES)]
    # How TensorBoard is reached (tensorboard probe's "reach"): whether these are set, not their values.
    state += sorted(k for k in os.environ if k.startswith(("SSH_CONNECTION", "SSH_CLIENT", "JUPYTERHUB_",
                                                              "TENSORBOARD_PROXY_URL", "KUBERNETES_SERVICE_HOST"))
                    or k == "container")
    for tool in _TOOLS:
        found = shutil.which(tool)
        state.append(f"{tool}:{found}:{os.stat(found).st_mtime_ns if found else ''}")
    try:
        state.append(Path("/proc/driver/nvidia/version").read_text(errors="replace"))
    except OSError:
        state.append("no /proc/driver/nvidia/version")
    payloads = resources.files("tbdoctor.payloads")
    state += [p.read_text(encoding="utf-8") for p in sorted(payloads.iterdir(), key=lambda p: p.name)
              if p.name.endswith(".py")]
    state.append(resources.files("tbdoctor.schemas").joinpath("facts.json").read_text(encoding="utf-8"))
    return state


def fingerprint(target: Target, target_digest: str) -> str:
    h = hashlib.sha256()
    for part in [target.python, target_digest, *_host_state()]:
        h.update(part.encode("utf-8", "replace") + b"\0")
    return h.hexdigest()


def _entry(target: Target) -> Path:
    return cache_dir() / (hashlib.sha256(target.python.encode()).hexdigest()[:24] + ".json")


def load(target: Target, key: str, probes: set[str]) -> tuple[dict, float] | None:
    """(facts, age in seconds) when a fresh entry covering ``probes`` exists."""
    try:
        entry = json.loads(_entry(target).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    age = time.time() - entry.get("stored_at", 0)
    facts = entry.get("facts") or {}
    if entry.get("fingerprint") != key or not 0 <= age <= MAX_AGE or not probes <= set(facts.get("probes", {})):
        return None
    # The key covers tbdoctor's version, payloads and facts schema, and the digest any edit
    # of the facts: they need no schema validation (importing jsonschema costs more than a hit).
    if facts.get("schema") != facts_mod.SCHEMA or entry.get("facts_sha256") != _digest(facts):
        return None  # edited by hand or by another tool: probe afresh
    return facts, age


def _digest(facts: dict) -> str:
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode("utf-8", "replace")).hexdigest()


def store(target: Target, key: str, facts: dict) -> None:
    """Keep ``facts`` if every probe succeeded; a cache that can't be written is no error."""
    if any(meta.get("status") != "ok" for meta in facts.get("probes", {}).values()):
        return
    path = _entry(target)
    try:
        files.private_dir(path.parent)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        facts = redact.value(facts)  # redacted once, here: the digest is of what is stored
        entry = {"fingerprint": key, "stored_at": time.time(), "facts_sha256": _digest(facts), "facts": facts}
        files.write_text(tmp, json.dumps(entry) + "\n", private=True, serialised=True)
        os.replace(tmp, path)
    except OSError:
        pass
