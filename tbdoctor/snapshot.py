"""Snapshots of an environment's distributions in tbdoctor's state folder, and restoring one.

A snapshot is ``<state>/snapshots/<ID>/``: ``snapshot.json`` (target, time,
the findings and plan it was taken for, every distribution with its exact
version and location, and the outcome) and ``wheels/``, the distributions
the plan removes or replaces, repacked from their installed files by
``payloads/repack.py``. pip can only reinstall what an index or a wheel
offers; a repacked wheel gives back the very files that were installed
(local builds, yanked releases, private indexes included) with no network.
The state folder is platformdirs' user state dir, or ``$TBDOCTOR_STATE_DIR``;
tbdoctor creates its folders 0700 and snapshot.json 0600, redacted (files.py).
"""

from __future__ import annotations

import datetime
import json
import os
import secrets
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import platformdirs
from packaging.utils import canonicalize_name

from tbdoctor import files, probe
from tbdoctor.errors import UsageError
from tbdoctor.pipcmd import Pip, errors_of
from tbdoctor.target import Target

STATE_ENV = "TBDOCTOR_STATE_DIR"
PROBE_TIMEOUT = 120.0
REPACK_TIMEOUT = 1800.0  # torch is over a GB of files


def state_dir() -> Path:
    override = os.environ.get(STATE_ENV)
    return Path(override) if override else Path(platformdirs.user_state_dir("tbdoctor", appauthor=False))


def snapshots_dir() -> Path:
    return state_dir() / "snapshots"


@dataclass
class Snapshot:
    id: str
    path: Path
    data: dict

    @property
    def wheels(self) -> Path:
        return self.path / "wheels"

    def save(self) -> None:
        files.write_json(self.path / "snapshot.json", self.data, private=True, indent=2)

    def update(self, **values) -> None:
        self.data.update(values)
        self.save()

    def size(self) -> int:
        return sum(p.stat().st_size for p in self.wheels.glob("*.whl"))


def create(target: Target, facts: dict, reasons: list[str], commands: list[str], break_system: bool) -> Snapshot:
    """Record the distributions of ``facts`` (just probed) before anything changes."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    snap_id = f"{stamp}-{secrets.token_hex(2)}"
    path = snapshots_dir() / snap_id
    try:
        files.private_dir(path / "wheels")
    except OSError as exc:
        raise UsageError(f"cannot create the snapshot folder {path} ({exc.strerror or exc}); "
                         f"set {STATE_ENV} to a writable folder") from None
    snap = Snapshot(snap_id, path, {
        "schema": "tbdoctor.snapshot/1", "id": snap_id,
        "created": datetime.datetime.now().isoformat(timespec="seconds"),
        "target": target.to_dict(), "prefix": (facts.get("python") or {}).get("prefix"),
        "break_system_packages": break_system, "findings": reasons, "plan": commands,
        "distributions": [_brief(d) for d in (facts.get("packages") or {}).get("distributions", ())],
        "wheels": [], "touched": [], "outcome": "pending",
    })
    snap.save()
    return snap


def _brief(dist: dict) -> dict:
    return {"name": dist["name"], "canonical": dist.get("canonical") or canonicalize_name(dist["name"]),
            "version": dist["version"], "location": dist.get("location")}


def stash(snap: Snapshot, target: Target, names: set[str]) -> dict[str, str]:
    """Repack ``names`` into the snapshot's wheels; returns {name: why} for those that failed."""
    if not names:
        return {}
    try:
        result = probe.run_payload(target, "repack.py", REPACK_TIMEOUT,
                                   {"names": sorted(names), "outdir": str(snap.wheels)})
    except probe.ProbeFailed as exc:
        return {name: f"repacking failed: {exc}" for name in names}
    snap.update(wheels=[{k: w[k] for k in ("name", "version", "missing")} | {"file": Path(w["wheel"]).name}
                        for w in result.get("wheels", ())])
    return dict(result.get("failed") or {})  # "skipped" ones (not installed, outside the prefix) pip will not touch


def current_distributions(target: Target) -> list[dict]:
    data = probe.run_payload(target, "distributions.py", PROBE_TIMEOUT, {"cwd": None})
    return [_brief(d) for d in data["distributions"]]


def _owned(dists, prefix: str | None, scope: set[str] | None) -> Counter:
    root = os.path.realpath(prefix) + os.sep if prefix else ""
    return Counter((d["canonical"], d["version"]) for d in dists
                   if d.get("location") and os.path.realpath(d["location"]).startswith(root)
                   and (scope is None or d["canonical"] in scope))


def differences(snap: Snapshot, current: list[dict], scope: set[str] | None = None) -> tuple[list, list]:
    """(extra, missing): (name, version) installed now but not in the snapshot, and the reverse,
    inside the environment's own prefix (and among ``scope``'s names when given)."""
    before = _owned(snap.data["distributions"], snap.data.get("prefix"), scope)
    now = _owned(current, snap.data.get("prefix"), scope)
    return sorted((now - before).elements()), sorted((before - now).elements())


@dataclass
class Restore:
    ok: bool
    removed: list[str] = field(default_factory=list)
    reinstalled: list[str] = field(default_factory=list)
    unrestored: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def restore(snap: Snapshot, pip: Pip, target: Target, scope: set[str] | None = None) -> Restore:
    """Put the snapshot's distributions back: uninstall what was added or changed,
    reinstall the exact previous versions from the snapshot's wheels."""
    result = Restore(ok=False)
    try:
        extra, missing = differences(snap, current_distributions(target), scope)
    except probe.ProbeFailed as exc:
        result.errors.append(f"cannot list the installed distributions: {exc}")
        return result
    names = sorted({name for name, _ in extra})
    first, last = [n for n in names if n != "pip"], [n for n in names if n == "pip"]  # pip goes last: it does the work
    if first:
        run = pip.run(pip.uninstall_argv(first))
        if not run.ok:
            result.errors.append(f"uninstalling {', '.join(first)} failed: {errors_of(run)}")
    result.removed = [f"{n} {v}" for n, v in extra]
    stashed = {(canonicalize_name(w["name"]), w["version"]) for w in snap.data.get("wheels", ())}
    pins = [f"{name}=={version}" for name, version in missing]
    from_wheels = [f"{n}=={v}" for n, v in missing if (n, v) in stashed]
    elsewhere = [p for p in pins if p not in from_wheels]
    if from_wheels:
        run = pip.run(pip.restore_argv(snap.wheels, from_wheels))
        if not run.ok:
            result.errors.append(f"reinstalling {', '.join(from_wheels)} failed: {errors_of(run)}")
    if elsewhere:  # not stashed (the plan was not expected to touch them): ask the configured index
        run = pip.run(pip.install_argv(elsewhere, ("--no-deps", "--find-links", str(snap.wheels))))
        if not run.ok:
            result.errors.append(f"reinstalling {', '.join(elsewhere)} failed: {errors_of(run)}")
    result.reinstalled = [f"{n} {v}" for n, v in missing]
    if last:
        run = pip.run(pip.uninstall_argv(last))
        if not run.ok:
            result.errors.append(f"uninstalling pip failed: {errors_of(run)}")
    try:
        extra, missing = differences(snap, current_distributions(target), scope)
    except probe.ProbeFailed as exc:
        result.errors.append(f"cannot list the installed distributions after restoring: {exc}")
        return result
    result.unrestored = [f"{n} {v} is installed (was not)" for n, v in extra] + [f"{n} {v} is missing" for n, v in missing]
    result.ok = not result.unrestored
    return result


def all_snapshots() -> list[Snapshot]:
    """Every readable snapshot, newest first."""
    found = []
    for path in sorted(snapshots_dir().glob("*/snapshot.json"), reverse=True):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and data.get("schema") == "tbdoctor.snapshot/1":
            found.append(Snapshot(data["id"], path.parent, data))
    return found


def find(snap_id: str | None, python: str | None) -> Snapshot:
    """The snapshot ``snap_id``, or the newest one for the interpreter ``python``."""
    snaps = all_snapshots()
    if snap_id:
        for snap in snaps:
            if snap.id == snap_id:
                return snap
        raise UsageError(f"--rollback {snap_id}: no such snapshot in {snapshots_dir()} (see `tbdoctor fix --history`)")
    for snap in snaps:
        if python is None or snap.data["target"]["python"] == python:
            return snap
    raise UsageError(f"--rollback: no snapshot for {python or 'any interpreter'} in {snapshots_dir()}")
