"""The published JSON Schemas (draft 2020-12) of tbdoctor's JSON outputs and facts.

One file per contract, ``<name>.json``, its ``title`` the ``schema`` string it
describes (``report`` -> ``tbdoctor.report/1``). ``report`` refers to ``facts``
and ``verify`` by their ``$id`` (``urn:tbdoctor:schema:<name>-1``). Validation
uses jsonschema, imported only when something is validated.
"""

from __future__ import annotations

import json
from importlib import resources

NAMES = ("report", "verify", "facts", "bugreport", "compat", "logdir", "fleet")


def text(name: str) -> str:
    """The schema ``name`` as published (KeyError for an unknown name)."""
    if name not in NAMES:
        raise KeyError(name)
    return resources.files(__name__).joinpath(f"{name}.json").read_text(encoding="utf-8")


def load(name: str) -> dict:
    return json.loads(text(name))


def for_contract(schema: str) -> str | None:
    """The schema name for a ``"schema"`` string such as ``tbdoctor.report/1`` (None: not one of ours)."""
    return next((n for n in NAMES if schema == f"tbdoctor.{n}/1"), None)


def validator(name: str):
    """A jsonschema validator for ``name`` that resolves the other schemas' ``$id``s."""
    import jsonschema
    from referencing import Registry, Resource
    schemas = {n: load(n) for n in NAMES}
    registry = Registry().with_resources((s["$id"], Resource.from_contents(s)) for s in schemas.values())
    return jsonschema.Draft202012Validator(schemas[name], registry=registry)


def problem(name: str, data) -> str | None:
    """The first way ``data`` breaks schema ``name``, as "key.path: message" (None: valid)."""
    error = next(iter(sorted(validator(name).iter_errors(data), key=lambda e: [str(p) for p in e.absolute_path])), None)
    if error is None:
        return None
    where = ".".join(str(p) for p in error.absolute_path) or "(top level)"
    return f"{where}: {_short(error)}"


def _short(error) -> str:
    """jsonschema's message without a whole nested value in it."""
    if error.validator == "type":
        return f"{_shown(error.instance)} is not of type {' or '.join(_listed(error.validator_value))}"
    if error.validator == "required":
        return error.message.replace(repr(error.instance), "object") if len(repr(error.instance)) > 80 else error.message
    return error.message if len(error.message) <= 160 else error.message[:157] + "..."


def _listed(value) -> list[str]:
    return [value] if isinstance(value, str) else [str(v) for v in value]


def _shown(value) -> str:
    shown = repr(value) if not isinstance(value, (dict, list)) else type(value).__name__.replace("dict", "an object") \
        .replace("list", "an array")
    return shown if len(shown) <= 60 else shown[:57] + "..."
