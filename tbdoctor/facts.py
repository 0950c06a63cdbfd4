"""The facts snapshot: schema, JSON round-trip and redaction.

Facts are one JSON-serialisable dict. Top level: ``schema``, ``tbdoctor``,
``collected_at`` (ISO date), ``target``, ``probes`` (name -> run metadata) and
one key per probe holding what it gathered (None when the probe failed).

Redaction has two stages, one mechanism (redact.py). ``redact`` runs when
facts are collected: no known secret or secret shape enters a snapshot.
``Redactor`` runs on every output (all formats, ``report``): it also
removes what is only sensitive when shown to others (the home directory,
shown as ``~``; user and host names; GPU UUIDs) and any secret still present
in hand-made or foreign facts. ``load`` and ``invalid`` check facts against the
published schema (schemas/facts.json). Leaf module apart from errors, redact and schemas.
"""

from __future__ import annotations

import getpass
import json
import re
import socket
from pathlib import Path

from tbdoctor import redact as redact_mod
from tbdoctor.errors import UsageError, read_text

SCHEMA = "tbdoctor.facts/1"
REDACTED = redact_mod.REDACTED
is_secret_name = redact_mod.is_secret_name


def redact_text(text: str) -> str:
    """``text`` without secrets (redact.py: the environment's, and every known shape)."""
    return redact_mod.text(text)


def redact(value, key: str = ""):
    """A copy of ``value`` without secrets (values of secret-named keys go whole)."""
    return redact_mod.value(value, key)


def save(facts: dict, path: str) -> None:
    try:
        from tbdoctor import files
        files.write_json(path, facts, indent=2, sort_keys=True)
    except OSError as exc:
        raise UsageError(f"--save-facts {path}: cannot write ({exc.strerror or exc})") from None


def load(path: str) -> dict:
    """Read a snapshot written by ``--save-facts``; anything else is a UsageError."""
    text = read_text(path, f"--facts {path}")
    try:
        facts = json.loads(text)
    except ValueError as exc:
        raise UsageError(f"--facts {path}: not valid JSON ({exc})") from None
    if not isinstance(facts, dict) or facts.get("schema") != SCHEMA:
        found = facts.get("schema") if isinstance(facts, dict) else type(facts).__name__
        raise UsageError(f"--facts {path}: not a tbdoctor facts snapshot (schema {found!r}, expected {SCHEMA!r})")
    wrong = invalid(facts)
    if wrong:
        raise UsageError(f"--facts {path}: does not match the {SCHEMA} schema: {wrong}")
    return facts


def invalid(facts) -> str | None:
    """Where ``facts`` breaks the published facts schema ("key.path: message"), or None."""
    from tbdoctor import schemas
    return schemas.problem("facts", facts)


# --- output-stage redaction -------------------------------------------------

# Any UUID, and GPU/MIG ids (NVML: GPU-<uuid>, MIG-<uuid>; old MIG ids: MIG-GPU-<uuid>/1/0, possibly cut short).
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
                   r"|(?<=GPU-)[0-9a-fA-F]{8}[0-9a-fA-F-]*|(?<=MIG-)[0-9a-fA-F]{8}[0-9a-fA-F-]*")
_IDENTITY_KEYS = {"hostname": "<host>", "user": "<user>"}  # the system probe's fields
_NAME_EDGE = "A-Za-z0-9_.-"  # characters that continue a user or host name
# Service accounts and container defaults identify nobody, and replacing them as
# words would mangle reports ("user site-packages"); their home folders still go.
_GENERIC_NAMES = {"root", "user", "admin", "runner", "ubuntu", "debian", "python", "jovyan", "app", "worker", "ci",
                  "build", "builder", "jenkins", "gitlab-runner", "docker", "nobody", "vagrant", "ec2-user", "test",
                  "localhost", "localhost.localdomain"}


class Redactor:
    """Removes secrets and identities from any JSON-like value or text.

    Built from facts (their ``system`` probe names the machine's home, user
    and host) plus this process's own, so facts from another machine are
    scrubbed of both. ``identities=False`` (``report --no-redact``) keeps home,
    user, host names and GPU UUIDs; secrets are removed regardless.
    """

    def __init__(self, facts: dict | None = None, identities: bool = True):
        facts = facts or {}
        self.identities = identities
        self._done: dict[str, str] = {}
        self.secrets = redact_mod.current().joined(_secret_literals(facts))
        system = facts.get("system") if isinstance(facts.get("system"), dict) else {}
        homes = {system.get("home"), _local(lambda: str(Path.home()))}
        users = {system.get("user"), _local(getpass.getuser)}
        hosts = {system.get("hostname"), _local(socket.gethostname)}
        homes = sorted({h.rstrip("/\\") for h in homes if _usable_home(h)}, key=len, reverse=True)
        self.homes = [re.compile(re.escape(v) + r"(?=$|[/\\\s'\":;,)\]])")  # each home, longest first, as given and with /
                      for home in homes for v in dict.fromkeys((home, home.replace("\\", "/")))]
        names = [(n, "<user>") for n in users if _identifying(n)] + [(n, "<host>") for n in hosts if _identifying(n)]
        names.sort(key=lambda pair: len(pair[0]), reverse=True)
        self.names = [(re.compile(rf"(?<![{_NAME_EDGE}]){re.escape(n)}(?![{_NAME_EDGE}])", re.I), label)
                      for n, label in names]
        # One search tells whether a text has anything of the above (most facts have none).
        self._identity = re.compile("|".join([_UUID.pattern] + [p.pattern for p in self.homes]
                                             + [p.pattern for p, _ in self.names]), re.I)

    def text(self, text: str) -> str:
        if text not in self._done:  # values repeat (locations, versions) and so do keys ("name")
            self._done[text] = self._text(text)
        return self._done[text]

    def _text(self, text: str) -> str:
        text = self.secrets.text(text)
        if self.identities and self._identity.search(text):
            text = _UUID.sub(REDACTED, text)
            for home in self.homes:
                text = home.sub("~", text)
            for pattern, label in self.names:
                text = pattern.sub(label, text)
        return text

    def value(self, value, key: str = ""):
        """A redacted copy of a JSON-like value (keys are redacted as text)."""
        if isinstance(value, dict):
            return {self.text(k) if isinstance(k, str) else k: self.value(v, k) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.value(v) for v in value]
        if isinstance(value, str):
            if key and value and (is_secret_name(key) or (self.identities and key.lower() == "uuid")):
                return REDACTED
            if self.identities and key in _IDENTITY_KEYS and value:  # even generic names, where they are named
                return _IDENTITY_KEYS[key]
            return self.text(value)
        return value


def _local(getter):
    try:
        return getter()
    except Exception:  # no home, no user entry (containers), no hostname
        return None


def _identifying(name) -> bool:
    return isinstance(name, str) and len(name.strip()) >= 3 and name.lower() not in _GENERIC_NAMES


def _usable_home(home) -> bool:
    """A home folder worth replacing: not a filesystem root such as / or C:\\."""
    if not isinstance(home, str) or not home.strip():
        return False
    path = home.rstrip("/\\")
    return len(path) > 3 and not path.endswith(":")


def _secret_literals(value, key: str = "") -> set[str]:
    """Values of secret-named keys (and URL passwords, tokens) to search for elsewhere."""
    found: set[str] = set()
    if isinstance(value, dict):
        for k, v in value.items():
            found |= _secret_literals(v, k)
    elif isinstance(value, list):
        for v in value:
            found |= _secret_literals(v)
    elif isinstance(value, str):
        if key and is_secret_name(key):
            found.add(value)
        found |= redact_mod.found_in(value)
    return found
