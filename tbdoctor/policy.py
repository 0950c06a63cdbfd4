"""Policies: what an environment must have, read from TOML and validated.

Found as ``--policy FILE`` (a ``tbdoctor.toml``, or a ``pyproject.toml`` whose
``[tool.tbdoctor]`` table holds it), else ``tbdoctor.toml`` in the current
directory, else ``[tool.tbdoctor]`` in ``pyproject.toml`` there. Any mistake in
it is a UsageError (exit 2) naming the file, the line and the key. The rules
that judge facts against a policy are in ``rules/policy.py``; this module only
reads and validates. Keys: see ``KEYS`` and ``REQUIRE`` and the README.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name

from tbdoctor.errors import UsageError, read_text

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.9/3.10 only
    import tomli as tomllib

KEYS = {"strict": "true/false", "ignore": "a list of finding ids or glob patterns", "require": "a table"}
REQUIRE = {
    "gpus": "a whole number >= 0 (at least this many NVIDIA GPUs)",
    "cuda": "true (torch is a CUDA build that sees a GPU) or false (torch is a CPU build)",
    "python": "a version specifier such as '>=3.10'",
    "driver": "a version specifier for the NVIDIA driver such as '>=535'",
    "torch_cuda": "the CUDA version torch is built with, such as '12.8' or '>=12.1'",
    "packages": "a table of name = version specifier ('*' for any version)",
}
_SPEC_KEYS = ("python", "driver", "torch_cuda")


@dataclass(frozen=True)
class Policy:
    source: str  # the file, as the user would name it
    strict: bool = False
    ignore: tuple[str, ...] = ()
    require: dict = field(default_factory=dict)  # validated: key -> value (specifiers as strings)

    def to_dict(self) -> dict:
        """What the policy rules read, under ``facts["policy"]``."""
        return {"source": self.source, "strict": self.strict, "ignore": list(self.ignore), "require": self.require}


def find(explicit: str | None, cwd: Path | None = None) -> Policy | None:
    """The policy in force, or None when there is none."""
    if explicit:
        return load_file(explicit)
    cwd = cwd or Path()  # relative paths: the report names "tbdoctor.toml", not an absolute path
    if (cwd / "tbdoctor.toml").is_file():
        return load(cwd / "tbdoctor.toml")
    pyproject = cwd / "pyproject.toml"
    if pyproject.is_file():
        try:
            doc = tomllib.loads(pyproject.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
            return None  # not ours to judge unless it declares a policy; a broken file says nothing
        if isinstance(doc.get("tool"), dict) and "tbdoctor" in doc["tool"]:
            return load(pyproject)
    return None


def load_file(name: str) -> Policy:
    """The policy in ``name`` (a ``tbdoctor.toml`` or a ``pyproject.toml``)."""
    return load(Path(name))


def load(path: Path) -> Policy:
    name = str(path)
    text = read_text(path, f"policy {name}")
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = _syntax_error_line(exc)
        where = f"{name}:{line}" if line else name
        shown = text.splitlines()[line - 1].strip() if line and line <= len(text.splitlines()) else ""
        raise UsageError(f"policy {where}: invalid TOML ({exc}){f': {shown}' if shown else ''}") from None
    root: tuple[str, ...] = ()
    if path.name == "pyproject.toml":
        root = ("tool", "tbdoctor")
        doc = (doc.get("tool") or {}).get("tbdoctor") if isinstance(doc.get("tool"), dict) else None
        if doc is None:
            raise UsageError(f"policy {name}: has no [tool.tbdoctor] table")
    return _validate(doc, _Locator(name, text, root))


def _syntax_error_line(exc) -> int | None:
    line = getattr(exc, "lineno", None)  # Python 3.14 sets it; older tomllib/tomli only say it in the text
    if line:
        return line
    m = re.search(r"line (\d+)", str(exc))
    return int(m[1]) if m else None


class _Locator:
    """Finds the line of a key in the TOML text, for error messages.

    Hand-written: tomllib returns plain dicts without positions. It follows
    table headers (``[require]``, ``[tool.tbdoctor.require]``), dotted keys
    (``require.gpus = 1``) and inline tables (``packages = {torch = "x"}``).
    """

    def __init__(self, name: str, text: str, root: tuple[str, ...]):
        self.name, self.lines, self.root = name, text.splitlines(), root

    def line(self, path: tuple[str, ...]) -> int | None:
        full = self.root + path
        best = None
        table: tuple[str, ...] = ()
        for number, raw in enumerate(self.lines, 1):
            stripped = raw.strip()
            header = re.fullmatch(r"\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?", stripped)
            if header:
                table = _split_key(header[1])
                if table == full:
                    best = number
                continue
            key = re.match(r"""((?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*'))*)\s*=""", stripped)
            if not key:
                continue
            here = table + _split_key(key[1])
            if here == full:
                return number
            if full[:len(here)] == here and len(here) < len(full):
                rest = full[len(here):]
                if re.search(rf"""[{{,]\s*["']?{re.escape(rest[0])}["']?\s*=""", stripped):
                    return number  # inside an inline table on this line
                best = best or number
        return best

    def error(self, path: tuple[str, ...], message: str) -> UsageError:
        line = self.line(path)
        where = f"{self.name}:{line}" if line else self.name
        return UsageError(f"policy {where}: key '{'.'.join(self.root + path)}': {message}")


def _split_key(key: str) -> tuple[str, ...]:
    parts = re.findall(r""""([^"]*)"|'([^']*)'|([A-Za-z0-9_-]+)""", key)
    return tuple(next(p for p in part if p) if any(part) else "" for part in parts)


def _validate(doc: dict, loc: _Locator) -> Policy:
    for key in doc:
        if key not in KEYS:
            raise loc.error((key,), f"unknown key (known: {', '.join(KEYS)})")
    strict = doc.get("strict", False)
    if not isinstance(strict, bool):
        raise loc.error(("strict",), f"expected true or false, got {strict!r}")
    ignore = doc.get("ignore", [])
    if not isinstance(ignore, list) or not all(isinstance(i, str) and i for i in ignore):
        raise loc.error(("ignore",), f"expected {KEYS['ignore']}, got {ignore!r}")
    require = doc.get("require", {})
    if not isinstance(require, dict):
        raise loc.error(("require",), f"expected a table ([require]), got {require!r}")
    return Policy(loc.name, strict, tuple(ignore), _validate_require(require, loc))


def _validate_require(require: dict, loc: _Locator) -> dict:
    out: dict = {}
    for key, value in require.items():
        path = ("require", key)
        if key not in REQUIRE:
            raise loc.error(path, f"unknown requirement (known: {', '.join(REQUIRE)})")
        if key == "gpus":
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise loc.error(path, f"expected {REQUIRE[key]}, got {value!r}")
            out[key] = value
        elif key == "cuda":
            if not isinstance(value, bool):
                raise loc.error(path, f"expected {REQUIRE[key]}, got {value!r}")
            out[key] = value
        elif key in _SPEC_KEYS:
            out[key] = _specifier(value, path, loc, bare_means_prefix=key == "torch_cuda")
        else:  # packages
            if not isinstance(value, dict):
                raise loc.error(path, f"expected {REQUIRE[key]}, got {value!r}")
            packages = {}
            for name, spec in value.items():
                if not re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?", name):
                    raise loc.error(path + (name,), "not a valid package name")
                packages[canonicalize_name(name)] = {"name": name, "spec": _specifier(spec, path + (name,), loc)}
            out[key] = packages
    return out


def _specifier(value, path: tuple[str, ...], loc: _Locator, bare_means_prefix: bool = False) -> str:
    """A validated specifier string; '*' and '' mean any version, a bare version
    means that version (``12.8`` -> ``==12.8.*`` where ``bare_means_prefix``)."""
    if not isinstance(value, str):
        raise loc.error(path, f"expected a version specifier string such as '>=2.3', got {value!r}")
    text = value.strip()
    if text in ("", "*"):
        return ""
    if re.fullmatch(r"\d+(\.\d+)*", text):
        text = f"=={text}.*" if bare_means_prefix else f"=={text}"
    try:
        SpecifierSet(text)
    except InvalidSpecifier:
        raise loc.error(path, f"invalid version specifier {value!r} (examples: '>=2.3', '==2.13.*', '>=1.2,<2')") from None
    return text
