"""What one ``tbdoctor verify`` run produced, and its ``tbdoctor.verify/1`` JSON.

Passive values (no I/O). The reference problem is defined here, once: the
job, the readback and the README all state the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

SCHEMA = "tbdoctor.verify/1"
PASS, FAIL, SKIPPED = "pass", "fail", "skipped"

# y = 2x + 1 + N(0, NOISE^2), x ~ U(-1, 1), SAMPLES points, full-batch SGD.
# The least-squares estimate has standard errors NOISE/sqrt(SAMPLES*var(x)) =
# 0.0054 (weight) and NOISE/sqrt(SAMPLES) = 0.0031 (bias): TOLERANCE is about ten
# of them. The best achievable mean squared error is about NOISE^2 = 0.01 (its
# relative spread is sqrt(2/SAMPLES) = 4.4%): LOSS_BOUND = 1.5 * NOISE^2.
REFERENCE = {
    "weight": 2.0, "bias": 1.0, "noise": 0.1, "samples": 1024, "seed": 0,
    "lr": 0.1, "steps": 200, "tolerance": 0.05, "loss_bound": 0.015, "histogram_every": 10,
}


@dataclass
class Phase:
    name: str
    status: str = SKIPPED
    seconds: float = 0.0
    detail: str = ""
    fix: str = ""
    framework: str = ""  # torch | tf for the job's own phases

    def to_dict(self) -> dict:
        data = {"name": self.name, "status": self.status, "seconds": round(self.seconds, 3), "detail": self.detail}
        if self.fix:
            data["fix"] = self.fix
        if self.framework:
            data["framework"] = self.framework
        return data


STAGES = ("written", "read_back", "served", "shown")
STAGE_PHASE = {"written": "log", "read_back": "readback", "served": "server", "shown": "browser"}


@dataclass
class KindResult:
    """One summary kind through the stages; a stage not reached stays ``None``."""

    name: str
    written: str | None = None
    read_back: str | None = None
    served: str | None = None
    shown: str | None = None
    detail: str = ""  # why the failed stage failed
    fix: str = ""
    runs: list[str] = field(default_factory=list)

    def last(self) -> str | None:
        """The status of the last stage reached."""
        reached = [getattr(self, s) for s in STAGES if getattr(self, s) is not None]
        return reached[-1] if reached else None

    def fail(self, stage: str, detail: str, fix: str) -> None:
        setattr(self, stage, FAIL)
        self.detail, self.fix = detail, fix

    @property
    def failed_stage(self) -> str | None:
        return next((s for s in STAGES if getattr(self, s) == FAIL), None)

    def to_dict(self) -> dict:
        data = {s: getattr(self, s) for s in STAGES}
        data["runs"] = self.runs
        if self.detail:
            data.update(detail=self.detail, fix=self.fix)
        return data


@dataclass
class JobRun:
    """One framework's training job, as the target reported it."""

    framework: str
    phases: list[Phase]
    device: str = ""
    params: dict | None = None
    final_loss: float | None = None
    steps: int = 0
    versions: dict = field(default_factory=dict)
    written: dict = field(default_factory=dict)  # run -> {"scalars": {tag: [[step, value]]}, ...}
    gpu: dict | None = None
    notes: list[str] = field(default_factory=list)
    kind_errors: dict = field(default_factory=dict)  # kind -> {"detail", "fix"}: not written

    def to_dict(self) -> dict:
        data = {"device": self.device, "params": self.params, "final_loss": self.final_loss,
                "steps": self.steps, "versions": self.versions}
        if self.gpu:
            data["gpu"] = self.gpu
        if self.notes:
            data["notes"] = self.notes
        return data


@dataclass
class Outcome:
    target: dict
    logdir: str
    run_dir: str
    jobs: list[JobRun] = field(default_factory=list)
    phases: list[Phase] = field(default_factory=list)  # readback, server, distributed
    curve: list[tuple[int, float]] = field(default_factory=list)  # loss as read back
    runs: list[str] = field(default_factory=list)  # TensorBoard run names verified
    url: str = ""
    screenshot: str = ""  # the browser phase's PNG of the scalars dashboard
    distributed: dict | None = None
    notes: list[str] = field(default_factory=list)
    logdir_kept: bool = True  # False: a temporary logdir, removed when verify exits
    kinds: dict[str, KindResult] = field(default_factory=dict)  # per summary kind

    def failed_kinds(self) -> list[KindResult]:
        return [k for k in self.kinds.values() if k.failed_stage]

    def all_phases(self) -> list[Phase]:
        return [p for job in self.jobs for p in job.phases] + self.phases

    @property
    def passed(self) -> bool:
        return all(p.status != FAIL for p in self.all_phases()) and any(
            p.status == PASS for p in self.all_phases() if p.name == "train") and not self.failed_kinds()

    def first_failure(self) -> Phase | None:
        """The first failed phase; else the first failed summary kind, as a phase of its stage."""
        failed = next((p for p in self.all_phases() if p.status == FAIL), None)
        if failed is None and self.failed_kinds():
            kind = self.failed_kinds()[0]
            failed = Phase(STAGE_PHASE[kind.failed_stage], FAIL, 0.0, kind.detail, kind.fix)
        return failed

    def primary(self) -> JobRun | None:
        return self.jobs[0] if self.jobs else None

    def to_dict(self) -> dict:
        main = self.primary()
        failure = self.first_failure()
        data = {
            "schema": SCHEMA,
            "status": PASS if self.passed else FAIL,
            "device": main.device if main else "",
            "logdir": self.run_dir or self.logdir,
            "logdir_kept": self.logdir_kept,
            "params": main.params if main else None,
            "final_loss": main.final_loss if main else None,
            "steps": main.steps if main else 0,
            "phases": [p.to_dict() for p in self.all_phases()],
            "target": {k: self.target.get(k) for k in ("python", "chosen_by")},
            "reference": {k: REFERENCE[k] for k in ("weight", "bias", "noise", "tolerance", "loss_bound")},
            "frameworks": {job.framework: job.to_dict() for job in self.jobs},
            "runs": self.runs,
            "notes": self.notes + [n for job in self.jobs for n in job.notes],
        }
        if self.kinds:
            data["kinds"] = {name: kind.to_dict() for name, kind in self.kinds.items()}
        if failure is not None:
            data["failure"] = {"phase": failure.name, "reason": failure.detail, "fix": failure.fix}
            if not any(p.status == FAIL for p in self.all_phases()):
                data["failure"]["kind"] = self.failed_kinds()[0].name
        if self.url:
            data["url"] = self.url
        if self.screenshot:
            data["screenshot"] = self.screenshot
        if self.distributed:
            data["distributed"] = self.distributed
        return data
