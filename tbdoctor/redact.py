"""Secrets never leave tbdoctor: the one redactor, applied where output leaves the process.

``Secrets`` removes two kinds of secret from any text or JSON-like value:

- literal values it was told about, in every form output may give them (as is,
  %-encoded, JSON-, XML-, shell- and repr-escaped, and each line or quoted part
  of a multi-line one); ``current()`` is seeded once from the live environment:
  credential-named variables, passwords in URLs of any variable (PIP_*, UV_*),
  of pip's, uv's and twine's configuration files, and ~/.netrc passwords;
- shapes: URL user info (up to the last ``@`` before the host), ``?token=``
  query values, quoted and unquoted assignments to credential-named keys
  (``HF_TOKEN='…'``, ``"api_key": "…"``, ``--password=…``), well-known token
  prefixes (Hugging Face, GitHub, GitLab, OpenAI, AWS, Slack, PyPI, npm,
  Google, Stripe), JWTs, private key blocks, and long hex/base64 strings next
  to key-like words.

``install()`` (cli.main) wraps sys.stdout and sys.stderr, and files.py every
file tbdoctor writes, so the boundary alone suffices; renderers also redact
values before formatting (render.redacted), so that escaping or table layout
never split a secret. Hand-written: no maintained library seeds from pip/uv/
netrc; the prefixes are the vendors' documented token formats.
"""

from __future__ import annotations

import dataclasses
import functools
import html
import json
import os
import re
import shlex
import sys
import threading
from pathlib import Path
from urllib.parse import quote, quote_plus, unquote, unquote_plus

REDACTED = "<redacted>"
MIN_LITERAL = 6  # shorter values are redacted only where their key or shape says so

# Names (of variables, keys, flags) whose values are secrets.
_SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSW|PWD$|API[_-]?KEY|ACCESS[_-]?KEY|PRIVATE|CREDENTIAL|AUTH(?!OR)"
                          r"|(^|[_-])KEY($|[_-])|KEY$|SESSION|COOKIE|BEARER", re.I)
# Well-known names that match but hold no secret (and the desktop's XDG_*, DBUS_* variables).
_NOT_SECRET = {"PWD", "OLDPWD", "SSH_AUTH_SOCK", "DESKTOP_SESSION", "GDMSESSION", "SESSION_MANAGER",
               "GPG_AGENT_INFO", "TOKENIZERS_PARALLELISM"}

# Tokens by their documented prefixes; they must start a word (see _starts_word). A token
# wrapped at the end of a line takes the next line's first run with it when that has a digit.
_SHAPES = re.compile("(?:" + "|".join([
    r"hf_[A-Za-z0-9]{16,}",  # Hugging Face
    r"gh[pousr]_[A-Za-z0-9]{16,}|github_pat_[A-Za-z0-9_]{16,}",  # GitHub
    r"gl(?:pat|dt|rt|ptt|ft|soat|cbt|imt|oas)-[A-Za-z0-9_-]{16,}",  # GitLab
    r"sk-(?:[A-Za-z0-9]+-){0,2}[A-Za-z0-9_-]{16,}",  # OpenAI / Anthropic style (sk-, sk-proj-, sk-ant-api03-)
    r"(?:AKIA|ASIA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA|ABIA|ACCA)[A-Z0-9]{16}(?![A-Za-z0-9])",  # AWS key ids
    r"(?:xox[abposre]|xapp)-[A-Za-z0-9-]{10,}",  # Slack
    r"eyJ[A-Za-z0-9_-]{4,}\.eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*",  # JWT
    r"pypi-AgE[A-Za-z0-9_-]{16,}|npm_[A-Za-z0-9]{30,}|AIza[0-9A-Za-z_-]{30,}|[sr]k_(?:live|test)_[A-Za-z0-9]{16,}",
    r"hooks\.slack\.com/services/[A-Za-z0-9/]{16,}|discord(?:app)?\.com/api/webhooks/[0-9]+/[A-Za-z0-9_-]{16,}",
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----(?:.|\n)*?(?:-----END [A-Z ]*PRIVATE KEY-----|\Z)",
]) + r")(?:(?:\r?\n|\\n|%0A)[ \t]*(?=[A-Za-z0-9_-]*[0-9])[A-Za-z0-9_-]+(?=\s|$|\\n|%0A|[\"',.;)\]]))?")
# What may end right before a token: a newline in JSON or in a GitHub command, a terminal colour.
_ESCAPED_BREAK = re.compile(r"(?:\\[nrt]|%0[AD]|\x1b\[[0-9;]*m)$")
# scheme://user:password@host: the user info runs to the LAST @ before the host (pip splits there too).
_URL_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<cred>(?:[^\s/?#\\]|\\(?![nrt]))+)@")
# ?token=... &sig=... in a URL's query string.
_QUERY = re.compile(r"(?P<key>[?&][^=&\s#]*(?:token|secret|passw|key|auth|sig|credential)[^=&\s#]*=)"
                    r"(?P<val>[^&\s#'\"\\]+)", re.I)
# key = value, key: value, "key": "value", --flag=value; the key decides (is_secret_name).
_VALUE = (r"(?P<val>\\\"(?:[^\"\\]|\\(?!\"))*\\\"|\"(?:[^\"\\\n]|\\.)*\"|'(?:[^'\\\n]|\\.)*'"
          r"|(?:(?:Bearer|Basic|Token|token)\s+)?(?![\[{(])(?:[^\s\"\\,;]|\\(?![nrtu\"]))+)")
# ("name==1.0", "name>=1" are requirements, not assignments; "--flag==x" and "VAR==x" are.)
_ASSIGN = re.compile(r"(?P<key>(?<![A-Za-z0-9_.-])-{0,2}[A-Za-z_][A-Za-z0-9_.-]*)(?P<kq>\\?[\"']\]?)?"
                     r"(?P<sep>[ \t]*(?:=|:(?!//))[ \t]*)" + _VALUE)
# Values no credential has: versions ("tokenizers": "0.19.1", google-auth: 2.35.0), and JSON's
# literals after a quoted key ("session": 3, "auth": null).
_VERSION_VALUE = re.compile(r"\\?[\"']?\d+(?:\.\d+)+[A-Za-z0-9.+_-]*\\?[\"']?")
_JSON_LITERAL = re.compile(r"null|true|false|-?\d+(?:\.\d+)?")
# Names that are a credential and nothing else (HF_TOKEN, api_key, --password): their values are
# redacted even when they look like a version ("tokenizers": "0.19.1" is not such a name).
_CREDENTIAL_NAME = re.compile(r"(?:^|[^A-Za-z0-9])(?:TOKEN|SECRET|PASSWORD|PASSWD|PWD|CREDENTIALS?|API_?KEY"
                              r"|ACCESS_?KEY|PRIVATE_?KEY)S?(?:$|[^A-Za-z0-9])", re.I)
# "with token XYZ1...", "Authorization: Bearer XYZ": a value after a credential word;
# "secret_key wJalr...": a long hex/base64 string next to a key-like word.
_AFTER_WORD = re.compile(r"(?P<word>(?i:\b(?:bearer|basic|token|password|passwd|secret|api[_ -]?key)\s+))"
                         r"(?=[^\s\"'\\]*[0-9])[^\s\"'\\]{8,}")
# --password VALUE, -p is not guessed: a command-line flag naming a credential, then its value.
_FLAG = re.compile(r"(?P<word>(?<![A-Za-z0-9_])--?(?:[A-Za-z]+-)*(?i:password|passwd|token|secret|api-key|access-key"
                   r"|auth)[ \t]+)(?![-\"'])[^\s\"'\\]+")
_NEAR_KEY = re.compile(r"(?P<word>(?i:(?:key|secret|token|passw|credential|signature|auth)[A-Za-z0-9_-]*)"
                       r"[\s:=\"'\\]{1,4})(?=[A-Za-z0-9+/=_.~-]*[0-9])(?=[A-Za-z0-9+/=_.~-]*[A-Za-z])"
                       r"[A-Za-z0-9+/=_.~-]{16,}")


def _harmless(name: str) -> bool:
    upper = name.upper()
    return upper in _NOT_SECRET or upper.startswith(("XDG_", "DBUS_"))


@functools.lru_cache(maxsize=4096)  # keys repeat: "name", "version", ...
def is_secret_name(name: str) -> bool:
    name = name.lstrip("-")
    return bool(_SECRET_NAME.search(name)) and not _harmless(name)


# A word every name _SECRET_NAME matches holds: a text without one has no credential-named key.
_SECRET_WORD = re.compile(r"token|secret|passw|pwd|key|private|credential|auth|session|cookie|bearer", re.I)


def _assignments(text: str) -> str:
    """Redact the values of credential-named assignments; other keys' values are searched too."""
    if not _SECRET_WORD.search(text):
        return text
    out, pos = [], 0
    while (m := _ASSIGN.search(text, pos)) is not None:
        if not is_secret_name(m["key"]) \
                or (_VERSION_VALUE.fullmatch(m["val"].lstrip("=")) and not _CREDENTIAL_NAME.search(m["key"])) \
                or (m["kq"] and _JSON_LITERAL.fullmatch(m["val"])) \
                or (m["val"].startswith("=") and m["sep"].endswith("=")  # name==1.0, not --flag== or VAR==
                    and not m["key"].startswith("-") and not m["key"].isupper()):
            out.append(text[pos:m.end("sep")])
            pos = m.end("sep")
            continue
        val = m["val"]
        for quote_mark in ('\\"', '"', "'"):
            if len(val) >= 2 * len(quote_mark) and val.startswith(quote_mark) and val.endswith(quote_mark):
                val = quote_mark + REDACTED + quote_mark
                break
        else:
            val = REDACTED
        out.append(text[pos:m.start("val")] + val)
        pos = m.end()
    return "".join(out) + text[pos:]


def _starts_word(text: str, start: int) -> bool:
    return start == 0 or not (text[start - 1].isalnum() or text[start - 1] == "_") \
        or bool(_ESCAPED_BREAK.search(text[max(0, start - 16):start]))


def _near_key(m: re.Match) -> str:
    start = m.start()
    while start and (m.string[start - 1].isalnum() or m.string[start - 1] in "_-"):
        start -= 1
    word = m.string[start:m.end("word")].rstrip(" \t:=\"'\\\n")
    return m[0] if _harmless(word) else m["word"] + REDACTED


# Every shape but a prefixed token needs one of these (a separator, a quote, "://" or "="): most
# facts (names, versions, paths) have none, and then only the token prefixes are searched.
_SEPARATOR = re.compile(r"[\s:=\"'\\]")
# ... and then an "@" (URL user info) or one of these words (each other shape names one).
_KEY_WORD = re.compile(r"token|secret|passw|pwd|key|private|credential|auth|session|cookie|bearer|basic|sig", re.I)


@functools.lru_cache(maxsize=1 << 16)  # a report redacts its facts more than once
def shapes(text: str) -> str:
    """``text`` with every secret-shaped part replaced (no literals)."""
    if not text:
        return text
    text = _SHAPES.sub(lambda m: REDACTED if _starts_word(m.string, m.start()) else m[0], text)
    if not _SEPARATOR.search(text) or ("@" not in text and not _KEY_WORD.search(text)):
        return text
    text = _URL_USERINFO.sub(lambda m: m["scheme"] + REDACTED + "@", text)
    text = _QUERY.sub(lambda m: m["key"] + REDACTED, text)
    text = _assignments(text)
    text = _AFTER_WORD.sub(lambda m: m["word"] + REDACTED, text)
    text = _FLAG.sub(lambda m: m["word"] + REDACTED, text)
    return _NEAR_KEY.sub(_near_key, text)


def variants(secret: str) -> set[str]:
    """The forms in which output may show ``secret``: as is, encoded, escaped, and
    each line or quoted part of it (a secret split across lines leaks no part)."""
    forms = {secret, unquote(secret), unquote_plus(secret)}
    for form in list(forms):
        encoded = quote(form, safe="")
        forms |= {encoded, re.sub(r"%[0-9A-F]{2}", lambda m: m[0].lower(), encoded), quote(form),
                  quote(form, safe="@:/"), quote_plus(form), json.dumps(form)[1:-1],
                  json.dumps(form, ensure_ascii=False)[1:-1], repr(form)[1:-1], html.escape(form),
                  html.escape(form, quote=False), shlex.quote(form),
                  form.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")}  # GitHub commands
    for form in list(forms):
        forms.update(re.split(r"\s+|%0[AD]|\\[nrt]|&#1[03];", form))
        forms.update(re.split(r"[\s\"'\\]+|%0[AD]|&#1[03];", form))
    return {f for f in forms if len(f) >= MIN_LITERAL and f != REDACTED}


class Secrets:
    """Known secret values plus the shapes; ``text`` and ``value`` redact."""

    def __init__(self, literals=()):
        self.literals: set[str] = set()
        self._forms: set[str] = set()
        self._pattern: re.Pattern | None = None
        for literal in literals:
            self.add(literal)

    def add(self, secret) -> None:
        if isinstance(secret, str) and len(secret) >= MIN_LITERAL and secret not in self.literals \
                and REDACTED not in secret:
            self.literals.add(secret)
            self._forms |= variants(secret)
            self._pattern = None

    def joined(self, literals) -> "Secrets":
        """A copy that also knows ``literals``."""
        other = Secrets()
        other.literals, other._forms = set(self.literals), set(self._forms)
        for literal in literals:
            other.add(literal)
        return other

    def text(self, text: str) -> str:
        if not isinstance(text, str) or not text:
            return text
        return shapes(self.known(text))

    def known(self, text: str) -> str:
        """``text`` with the known secret values replaced, in every form (no shapes)."""
        if self._forms:
            if self._pattern is None:
                self._ordered = sorted(self._forms, key=len, reverse=True)
                self._pattern = re.compile("|".join(re.escape(f) for f in self._ordered))
            if self._pattern.search(text):  # then longest first everywhere: overlapping forms leave no tail
                for form in self._ordered:
                    if form in text:
                        text = text.replace(form, REDACTED)
        return text

    def value(self, value, key: str = ""):
        """A redacted copy of a JSON-like value or dataclass (keys are redacted as text;
        values of credential-named keys go whole)."""
        if isinstance(value, dict):
            return {self.text(k) if isinstance(k, str) else k: self.value(v, k if isinstance(k, str) else "")
                    for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.value(v) for v in value]
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return dataclasses.replace(value, **{f.name: self.value(getattr(value, f.name), f.name)
                                                 for f in dataclasses.fields(value) if f.init})
        if isinstance(value, str):
            if key and value and is_secret_name(key):
                return REDACTED
            return self.text(value)
        return value


# --- seeding from the live environment ---------------------------------------

def found_in(text: str) -> set[str]:
    """Secret values written in ``text``: URL passwords (or a bare token as user),
    token shapes, and values assigned to credential-named keys."""
    found = {m[0] for m in _SHAPES.finditer(text)}
    if not _SEPARATOR.search(text):  # no URL, no assignment: only a prefixed token
        return found
    for m in _URL_USERINFO.finditer(text):
        user, _, password = m["cred"].partition(":")
        found.add(password or user)
    for m in _ASSIGN.finditer(text) if _SECRET_WORD.search(text) else ():
        if is_secret_name(m["key"]):
            found.add(m["val"].strip("\"'\\"))
    return found


def _config_files(environ) -> list[Path]:
    """pip's, uv's and twine's configuration files, where they exist or may."""
    home = Path.home()
    xdg = Path(environ.get("XDG_CONFIG_HOME") or home / ".config")
    dirs = [Path(d) for d in (environ.get("XDG_CONFIG_DIRS") or "/etc/xdg").split(os.pathsep) if d]
    paths = [environ.get("PIP_CONFIG_FILE"), environ.get("UV_CONFIG_FILE"), "/etc/pip.conf", "/etc/uv/uv.toml",
             home / ".pip" / "pip.conf", xdg / "pip" / "pip.conf", xdg / "uv" / "uv.toml", home / ".pypirc",
             home / "Library" / "Application Support" / "pip" / "pip.conf", "uv.toml", "pyproject.toml"]
    paths += [d / "pip" / "pip.conf" for d in dirs] + [d / "uv" / "uv.toml" for d in dirs]
    if environ.get("APPDATA"):
        paths += [Path(environ["APPDATA"]) / "pip" / "pip.ini", Path(environ["APPDATA"]) / "uv" / "uv.toml"]
    if environ.get("VIRTUAL_ENV"):
        paths += [Path(environ["VIRTUAL_ENV"]) / "pip.conf", Path(environ["VIRTUAL_ENV"]) / "pip.ini"]
    return [Path(p) for p in paths if p and str(p) != os.devnull]


def _read(path: Path) -> str:
    try:
        if path.is_file() and path.stat().st_size < 1_000_000:
            return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        pass
    return ""


def _netrc_passwords(environ) -> set[str]:
    import netrc
    path = environ.get("NETRC") or str(Path.home() / (".netrc" if os.name != "nt" else "_netrc"))
    found = set()
    try:
        for login, account, password in netrc.netrc(path).hosts.values():
            found.update(v for v in (password, account) if v)
    except (OSError, netrc.NetrcParseError):
        pass
    text = _read(Path(path))  # also what a strict parser refuses
    found.update(m[1] for m in re.finditer(r"\bpassword\s+(\S+)", text))
    return found


def from_environment(environ=None) -> Secrets:
    """Every secret tbdoctor can see from where it runs (values are never stored)."""
    environ = os.environ if environ is None else environ
    secrets = Secrets()
    for name, value in environ.items():
        if is_secret_name(name):
            secrets.add(value)
        for found in found_in(value):
            secrets.add(found)
    for path in _config_files(environ):
        for found in found_in(_read(path)):
            secrets.add(found)
    for found in _netrc_passwords(environ):
        secrets.add(found)
    return secrets


_CURRENT: Secrets | None = None
_LOCK = threading.Lock()


def current() -> Secrets:
    """The process's secrets, seeded from the environment on first use."""
    global _CURRENT
    with _LOCK:
        if _CURRENT is None:
            _CURRENT = from_environment()
        return _CURRENT


def reset() -> None:
    """Forget the seeded secrets (the next ``current()`` reads the environment again)."""
    global _CURRENT
    with _LOCK:
        _CURRENT = None


def text(value: str) -> str:
    return current().text(value)


def value(data, key: str = ""):
    return current().value(data, key)


def known(text: str) -> str:
    """For text serialised from values already redacted (``value``, facts.Redactor): the
    shapes were looked for in each value, before JSON joined them into one large text,
    where looking again costs more than the whole report; the known values are looked for."""
    return current().known(text)


# --- the terminal ------------------------------------------------------------

class RedactingStream:
    """A text stream that redacts what it passes on, whole lines at a time
    (and what is pending on ``flush``); everything else is the wrapped stream's."""

    def __init__(self, inner):
        self._inner = inner
        self._pending = ""
        self._lock = threading.RLock()

    def write(self, s: str) -> int:
        with self._lock:
            self._pending += s
            head, newline, tail = self._pending.rpartition("\n")
            if newline:
                self._inner.write(text(head + newline))
                self._pending = tail
            if len(self._pending) > 65536:
                self._drain()
        return len(s)

    def write_redacted(self, s: str) -> int:
        """Write ``s``, serialised from redacted values (see ``known``)."""
        with self._lock:
            self._drain()
            self._inner.write(known(s))
        return len(s)

    def writelines(self, lines) -> None:
        for line in lines:
            self.write(line)

    def _drain(self) -> None:
        if self._pending:
            pending, self._pending = self._pending, ""
            self._inner.write(text(pending))

    def flush(self) -> None:
        with self._lock:
            self._drain()
            self._inner.flush()

    def __getattr__(self, name):
        return getattr(self._inner, name)


def install(argv=()) -> None:
    """Seed from the environment (and from credentials in tbdoctor's own arguments, such
    as --index-url's) and route stdout and stderr through the redactor."""
    secrets = current()
    for arg in argv:
        for found in found_in(arg):
            secrets.add(found)
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is not None and not isinstance(stream, RedactingStream):
            setattr(sys, name, RedactingStream(stream))


def flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, RedactingStream):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
