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

The snapshot is also the fix's journal: ``may_touch`` (every name the plan
installs, upgrades or removes) and each step, marked "running" before it
runs, are written before anything changes. A fix killed at any point leaves
its snapshot "pending", and a rollback of a pending snapshot undoes every
difference to the recorded distributions, new installs included.
Retention (``prune``): per interpreter, the newest ``KEEP`` snapshots within
``MAX_BYTES`` of wheels; the newest and every unfinished one are never removed.
"""

from __future__ import annotations

import datetime
import json
import os
import secrets
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import platformdirs
from packaging.utils import canonicalize_name

from tbdoctor import files, payload
from tbdoctor.errors import UsageError
from tbdoctor.facts import redact_text
from tbdoctor.findings import quote_command
from tbdoctor.pipcmd import Pip, errors_of
from tbdoctor.target import Target

STATE_ENV = "TBDOCTOR_STATE_DIR"
PROBE_TIMEOUT = 120.0
REPACK_TIMEOUT = 1800.0  # torch is over a GB of files
PENDING, INCOMPLETE = "pending", "restore incomplete"  # outcomes of unfinished snapshots: never pruned
KEEP, MAX_BYTES = 10, 2 * 10**9


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

    @property
    def unfinished(self) -> bool:
        """A fix that never finished (killed) or a restore that failed: still needed."""
        outcome = str(self.data.get("outcome", PENDING))
        return outcome == PENDING or outcome.startswith(INCOMPLETE)

    def journal(self, step: str, title: str, command: str, status: str) -> None:
        """Record a step's status ("running" before it runs, then "done" or "failed")."""
        entries = self.data.setdefault("journal", [])
        entry = next((e for e in entries if e["step"] == step), None)
        if entry is None:
            entry = {"step": step, "title": title, "command": command}
            entries.append(entry)
        entry.update(status=status, at=datetime.datetime.now().isoformat(timespec="seconds"))
        self.save()


def create(target: Target, facts: dict, reasons: list[str], commands: list[str], break_system: bool,
           may_touch: list[str] = ()) -> Snapshot:
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
        "wheels": [], "may_touch": sorted(may_touch), "journal": [], "touched": [], "outcome": PENDING,
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
        result = payload.run_payload(target, "repack.py", REPACK_TIMEOUT,
                                   {"names": sorted(names), "outdir": str(snap.wheels)})
    except payload.ProbeFailed as exc:
        return {name: f"repacking failed: {exc}" for name in names}
    snap.update(wheels=[{k: w[k] for k in ("name", "version", "missing")} | {"file": Path(w["wheel"]).name}
                        for w in result.get("wheels", ())])
    return dict(result.get("failed") or {})  # "skipped" ones (not installed, outside the prefix) pip will not touch


def unrestorable(target: Target, names: set[str]) -> dict[str, str]:
    """{name: why} for those of ``names`` that could not be repacked (nothing is written)."""
    if not names:
        return {}
    result = payload.run_payload(target, "repack.py", PROBE_TIMEOUT, {"names": sorted(names), "outdir": None})
    return dict(result.get("failed") or {})


def current_distributions(target: Target) -> list[dict]:
    data = payload.run_payload(target, "distributions.py", PROBE_TIMEOUT, {"cwd": None})
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
    by_hand: list[str] = field(default_factory=list)  # commands that finish a failed restore


def _by_hand(snap: Snapshot, pip: Pip, extra: list, missing: list) -> list[str]:
    """The commands that make the environment match the snapshot: what a failed restore leaves to do."""
    stashed = {(canonicalize_name(w["name"]), w["version"]) for w in snap.data.get("wheels", ())}
    commands = []
    if extra:
        commands.append(pip.uninstall_argv(sorted({n for n, _ in extra})))
    from_wheels = [f"{n}=={v}" for n, v in missing if (n, v) in stashed]
    elsewhere = [f"{n}=={v}" for n, v in missing if (n, v) not in stashed]
    if from_wheels:
        commands.append(pip.restore_argv(snap.wheels, from_wheels))
    if elsewhere:
        commands.append(pip.install_argv(elsewhere, ("--no-deps",)))
    return [redact_text(quote_command(argv)) for argv in commands]


def restore(snap: Snapshot, pip: Pip, target: Target, scope: set[str] | None = None) -> Restore:
    """Put the snapshot's distributions back: uninstall what was added or changed,
    reinstall the exact previous versions from the snapshot's wheels."""
    result = Restore(ok=False)
    try:
        extra, missing = differences(snap, current_distributions(target), scope)
    except payload.ProbeFailed as exc:
        result.errors.append(f"cannot list the installed distributions: {exc}")
        return result
    names = sorted({name for name, _ in extra})
    first, last = [n for n in names if n != "pip"], [n for n in names if n == "pip"]  # pip goes last: it does the work
    if first:
        run = pip.run(pip.uninstall_argv(first))
        if not run.ok:
            result.errors.append(f"uninstalling {', '.join(first)} failed: {errors_of(run)}")
    stashed = {(canonicalize_name(w["name"]), w["version"]) for w in snap.data.get("wheels", ())}
    pins = [f"{name}=={version}" for name, version in missing]
    from_wheels = [f"{n}=={v}" for n, v in missing if (n, v) in stashed]
    elsewhere = [p for p in pins if p not in from_wheels]
    if from_wheels:
        run = pip.run(pip.restore_argv(snap.wheels, from_wheels))
        if not run.ok and len(from_wheels) > 1:  # one bad wheel fails them all: put back what can be
            for pin in from_wheels:
                one = pip.run(pip.restore_argv(snap.wheels, [pin]))
                if not one.ok:
                    result.errors.append(f"reinstalling {pin} failed: {errors_of(one)}")
        elif not run.ok:
            result.errors.append(f"reinstalling {', '.join(from_wheels)} failed: {errors_of(run)}")
    if elsewhere:  # not stashed (the plan was not expected to touch them): ask the configured index
        run = pip.run(pip.install_argv(elsewhere, ("--no-deps", "--find-links", str(snap.wheels))))
        if not run.ok:
            result.errors.append(f"reinstalling {', '.join(elsewhere)} failed: {errors_of(run)}")
    if last:
        run = pip.run(pip.uninstall_argv(last))
        if not run.ok:
            result.errors.append(f"uninstalling pip failed: {errors_of(run)}")
    try:
        extra_after, missing_after = differences(snap, current_distributions(target), scope)
    except payload.ProbeFailed as exc:
        result.errors.append(f"cannot list the installed distributions after restoring: {exc}")
        result.by_hand = _by_hand(snap, pip, extra, missing)
        return result
    result.removed = [f"{n} {v}" for n, v in extra if (n, v) not in extra_after]  # only what really changed
    result.reinstalled = [f"{n} {v}" for n, v in missing if (n, v) not in missing_after]
    result.unrestored = ([f"{n} {v} is installed (was not)" for n, v in extra_after]
                         + [f"{n} {v} is missing" for n, v in missing_after])
    result.ok = not result.unrestored
    if not result.ok:
        result.by_hand = _by_hand(snap, pip, extra_after, missing_after)
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


def prune(python: str | None = None, keep: int = KEEP, max_bytes: int = MAX_BYTES) -> list[Snapshot]:
    """Delete old snapshots: per interpreter (only ``python``'s when given), keep the newest
    ``keep`` whose wheels fit in ``max_bytes`` together, the newest always, unfinished ones always.
    Returns the removed ones."""
    removed, kept = [], Counter()
    used: Counter = Counter()
    for snap in all_snapshots():  # newest first
        owner = snap.data["target"]["python"]
        if python is not None and owner != python or snap.unfinished:
            continue
        size = snap.size()
        if not kept[owner] or (kept[owner] < keep and used[owner] + size <= max_bytes):
            kept[owner] += 1
            used[owner] += size
            continue
        shutil.rmtree(snap.path, ignore_errors=True)
        removed.append(snap)
    return removed
