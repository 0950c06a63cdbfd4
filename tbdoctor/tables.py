"""The only reader of the bundled data in ``checks/`` and ``envs/``.

In a wheel the folders live inside the package (``tbdoctor/checks``); in a
source checkout or an editable install they sit beside it.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.9/3.10 only
    import tomli as tomllib

_PACKAGE = Path(__file__).resolve().parent


def data_dir(name: str) -> Path:
    """``checks`` or ``envs``, wherever this installation keeps it."""
    for candidate in (_PACKAGE / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"tbdoctor data folder {name!r} is missing from this installation")


@functools.lru_cache(maxsize=None)
def load(table: str) -> dict:
    """One table of ``checks/`` (e.g. ``load("python")``), parsed once."""
    with open(data_dir("checks") / f"{table}.toml", "rb") as fh:
        return tomllib.load(fh)


def profiles() -> dict[str, dict]:
    """Every profile in ``envs/`` (file stem -> parsed TOML); tbdoctor.profiles validates them."""
    found = {}
    for path in sorted(data_dir("envs").glob("*.toml")):
        with open(path, "rb") as fh:
            found[path.stem] = tomllib.load(fh)
    return found
