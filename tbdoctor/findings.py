"""Findings and the Report: passive values that rules produce and renderers read.

Leaf module: imports nothing from tbdoctor.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from dataclasses import dataclass, field

OK, INFO, WARNING, ERROR, SKIPPED = "ok", "info", "warning", "error", "skipped"
STATUSES = (OK, INFO, WARNING, ERROR, SKIPPED)
_RANK = {SKIPPED: 0, OK: 1, INFO: 1, WARNING: 2, ERROR: 3}

# Section id -> label shown in reports, in report order.
SECTIONS = {
    "python": "Python",
    "pip": "pip and packages",
    "gpu": "NVIDIA driver and GPUs",
    "cuda": "CUDA toolkit and libraries",
    "torch": "PyTorch",
    "tensorflow": "TensorFlow",
    "jax": "JAX",
    "tensorboardx": "tensorboardX",
    "tensorboard": "TensorBoard",
    "numpy": "NumPy and protobuf",
    "policy": "Policy",
    "verify": "Verification",
    "tbdoctor": "tbdoctor itself",
}


def quote_command(argv: list[str]) -> str:
    """A copy-pasteable command line for this platform's shell."""
    if sys.platform == "win32":
        return subprocess.list2cmdline(argv)
    return shlex.join(argv)


@dataclass(frozen=True)
class Fix:
    """One action that resolves a finding.

    ``kind`` is one of pip-install, pip-uninstall, env, manual, ...; ``command``
    is what a user pastes; ``packages`` lists the requirement strings a pip
    action installs or the names it removes and ``options`` the pip options it
    passes (``--index-url URL``, ``--force-reinstall``), so ``fix`` can plan
    without parsing ``command``.
    """

    kind: str
    command: str
    packages: tuple[str, ...] = ()
    options: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        data = {"kind": self.kind, "command": self.command}
        if self.packages:
            data["packages"] = list(self.packages)
        if self.options:
            data["options"] = list(self.options)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "Fix":
        return cls(data["kind"], data["command"], tuple(data.get("packages", ())), tuple(data.get("options", ())))


@dataclass(frozen=True)
class Finding:
    id: str  # stable dotted id, e.g. "pip.version-conflict"
    status: str
    title: str
    detail: str = ""
    hint: str = ""
    fixes: tuple[Fix, ...] = ()
    section: str = ""  # defaults to the id's first component
    seconds: float = 0.0
    verbose_detail: str = ""  # shown only with -v (e.g. a traceback)
    subject: str = ""  # what the problem is about (a canonical package name) where one id covers many

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"bad status {self.status!r} for {self.id}")
        if not self.section:
            object.__setattr__(self, "section", self.id.split(".", 1)[0])

    @property
    def is_problem(self) -> bool:
        return self.status in (WARNING, ERROR)

    def to_dict(self) -> dict:
        data = {
            "id": self.id,
            "section": self.section,
            "status": self.status,
            "title": self.title,
            "detail": self.detail,
            "hint": self.hint,
            "fixes": [f.to_dict() for f in self.fixes],
            "seconds": round(self.seconds, 3),
        }
        if self.verbose_detail:
            data["verbose_detail"] = self.verbose_detail
        if self.subject:
            data["subject"] = self.subject
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "Finding":
        return cls(
            id=data["id"], status=data["status"], title=data["title"],
            detail=data.get("detail", ""), hint=data.get("hint", ""),
            fixes=tuple(Fix.from_dict(f) for f in data.get("fixes", ())),
            section=data.get("section", ""), seconds=data.get("seconds", 0.0),
            verbose_detail=data.get("verbose_detail", ""), subject=data.get("subject", ""),
        )


def worst(statuses) -> str:
    """The most severe status among ``statuses`` (ok when empty)."""
    return max(statuses, key=_RANK.__getitem__, default=OK)


@dataclass
class Report:
    """Everything one ``check`` produced: target, findings and the facts behind them."""

    target: dict
    findings: list[Finding]
    facts: dict
    tbdoctor_version: str = ""
    notes: list[str] = field(default_factory=list)  # e.g. "facts loaded from FILE"

    def summary(self) -> dict:
        counts = dict.fromkeys(STATUSES, 0)
        for f in self.findings:
            counts[f.status] += 1
        return counts

    def sections(self) -> list[tuple[str, list[Finding]]]:
        """Findings grouped by section, in the order of SECTIONS (unknown ones last)."""
        order = {name: i for i, name in enumerate(SECTIONS)}
        groups: dict[str, list[Finding]] = {}
        for f in self.findings:
            groups.setdefault(f.section, []).append(f)
        return sorted(groups.items(), key=lambda kv: order.get(kv[0], len(order)))

    def failed(self, strict: bool = False) -> bool:
        bad = (ERROR, WARNING) if strict else (ERROR,)
        return any(f.status in bad for f in self.findings)
