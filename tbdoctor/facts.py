"""The facts snapshot: schema, JSON round-trip and redaction of secrets.

Facts are one JSON-serialisable dict. Top level: ``schema``, ``tbdoctor``,
``collected_at`` (ISO date), ``target``, ``probes`` (name -> run metadata) and
one key per probe holding what it gathered (None when the probe failed).
Leaf module apart from errors.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from tbdoctor.errors import UsageError

SCHEMA = "tbdoctor.facts/1"
REDACTED = "<redacted>"

# Environment variable names whose values are secrets.
_SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSW|PASSWD|PWD$|API_?KEY|ACCESS_?KEY|PRIVATE|CREDENTIAL|AUTH|(^|_)KEY($|_)|SESSION|COOKIE", re.I)
# user:password@ (or a bare token@) in any URL.
_URL_CREDENTIALS = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<cred>[^/@\s:]+(:[^/@\s]*)?)@")


def is_secret_name(name: str) -> bool:
    return bool(_SECRET_NAME.search(name)) and name.upper() not in {"PWD", "OLDPWD"}


def redact_text(text: str) -> str:
    """Remove credentials embedded in URLs."""
    return _URL_CREDENTIALS.sub(lambda m: f"{m['scheme']}{REDACTED}@", text)


def redact(value, key: str = ""):
    """A copy of ``value`` with secret-named values and URL credentials removed."""
    if isinstance(value, dict):
        return {k: redact(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    if isinstance(value, str):
        if key and is_secret_name(key) and value:
            return REDACTED
        return redact_text(value)
    return value


# GPU and MIG instance UUIDs (nvidia-smi -L, NVML, CUDA_VISIBLE_DEVICES): they identify a machine.
_GPU_UUID = re.compile(r"\b(GPU|MIG)-[0-9a-fA-F]{8}[0-9a-fA-F-]*")


def redact_identifiers(value, key: str = ""):
    """A copy of ``value`` for reports, with GPU UUIDs removed.

    Saved facts keep them (``--save-facts``: the user's own machine); every
    rendered report (console, JSON, including the facts it embeds) goes through this.
    """
    if isinstance(value, dict):
        return {k: redact_identifiers(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_identifiers(v) for v in value]
    if isinstance(value, str):
        if key == "uuid" and value:
            return REDACTED
        return _GPU_UUID.sub(lambda m: f"{m[1]}-{REDACTED}", value)
    return value


def save(facts: dict, path: str) -> None:
    try:
        Path(path).write_text(json.dumps(facts, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"--save-facts {path}: cannot write ({exc.strerror or exc})") from None


def load(path: str) -> dict:
    """Read a snapshot written by ``--save-facts``; anything else is a UsageError."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"--facts {path}: cannot read ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise UsageError(f"--facts {path}: not a text file") from None
    try:
        facts = json.loads(text)
    except ValueError as exc:
        raise UsageError(f"--facts {path}: not valid JSON ({exc})") from None
    if not isinstance(facts, dict) or facts.get("schema") != SCHEMA:
        found = facts.get("schema") if isinstance(facts, dict) else type(facts).__name__
        raise UsageError(f"--facts {path}: not a tbdoctor facts snapshot (schema {found!r}, expected {SCHEMA!r})")
    return facts
