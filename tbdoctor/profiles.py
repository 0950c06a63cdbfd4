"""Environment profiles (``envs/*.toml``): validated, and turned into pip steps for one machine.

A profile has ``name``, ``description``, ``python`` (a specifier), ``hardware``
(cpu | nvidia | any), ``verify`` (torch | tf | all: the reference job to run in
the new environment), ``source``, and ``[[install]]`` groups: ``packages``
(PEP 508 requirements, markers allowed), optional ``index`` (a URL, or
``pytorch-cuda``: PyTorch's index for the CUDA variant that ``compat`` picks
for the driver and GPUs) and ``when`` (cpu | nvidia | any). Pure apart from
reading the tables.
"""

from __future__ import annotations

from dataclasses import dataclass

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet

from tbdoctor import compat, tables

HARDWARE = ("cpu", "nvidia", "any")
VERIFY = ("torch", "tf", "all")  # the reference job(s) `tbdoctor verify --framework` runs
CUDA_INDEX = "pytorch-cuda"


class ProfileError(Exception):
    """The profile cannot be used on this machine (or is malformed); the message says why."""


@dataclass(frozen=True)
class Group:
    packages: tuple[str, ...]
    index: str | None
    when: str


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    python: SpecifierSet
    hardware: str
    source: str
    verify: str
    groups: tuple[Group, ...]


@dataclass(frozen=True)
class Machine:
    """What the hardware facts say matters for choosing packages."""

    hardware: str  # cpu | nvidia
    driver: str | None = None
    cc: str | None = None  # the lowest compute capability among the GPUs
    platform: str = "linux"

    @classmethod
    def from_gpu_facts(cls, gpu: dict | None, platform: str) -> "Machine":
        gpus = (gpu or {}).get("gpus") or []
        driver = (gpu or {}).get("driver_version")
        if not gpus or not driver:
            return cls("cpu", platform=platform)
        ccs = [g["compute_capability"] for g in gpus if g.get("compute_capability")]
        lowest = min(ccs, key=lambda c: tuple(int(p) for p in c.split("."))) if ccs else None
        return cls("nvidia", driver, lowest, platform)

    def describe(self) -> str:
        if self.hardware == "cpu":
            return "no NVIDIA GPU"
        return f"NVIDIA driver {self.driver}" + (f", compute capability {self.cc}" if self.cc else "")


@dataclass(frozen=True)
class InstallStep:
    packages: tuple[str, ...]
    options: tuple[str, ...] = ()
    note: str = ""


def _validate(stem: str, raw: dict) -> Profile:
    where = f"envs/{stem}.toml"
    try:
        python = SpecifierSet(raw.get("python", ""))
        groups = []
        for i, group in enumerate(raw["install"]):
            for req in group["packages"]:
                Requirement(req)
            when = group.get("when", "any")
            if when not in HARDWARE:
                raise ValueError(f"install[{i}].when = {when!r} (choose from {', '.join(HARDWARE)})")
            groups.append(Group(tuple(group["packages"]), group.get("index"), when))
        if raw.get("hardware", "any") not in HARDWARE:
            raise ValueError(f"hardware = {raw['hardware']!r}")
        if raw["verify"] not in VERIFY:
            raise ValueError(f"verify = {raw['verify']!r} (choose from {', '.join(VERIFY)})")
        return Profile(raw["name"], raw["description"], python, raw.get("hardware", "any"), raw["source"],
                       raw["verify"], tuple(groups))
    except (KeyError, TypeError) as exc:
        raise ProfileError(f"{where}: missing or malformed key {exc}") from None
    except (InvalidSpecifier, InvalidRequirement, ValueError) as exc:
        raise ProfileError(f"{where}: {exc}") from None


def load_all() -> dict[str, Profile]:
    return {stem: _validate(stem, raw) for stem, raw in tables.profiles().items()}


def auto(machine: Machine) -> str:
    """The profile ``--profile auto`` picks: cuda with an NVIDIA driver, else cpu."""
    return "cuda" if machine.hardware == "nvidia" else "cpu"


def cuda_index(machine: Machine, torch_version: str | None = None) -> tuple[str, str]:
    """(PyTorch index URL, why) for the CUDA variant of ``torch_version``'s release (else the
    newest known release) that the driver runs and that has code for the GPUs."""
    for version in dict.fromkeys(v for v in (torch_version, compat.latest_torch()) if v):
        variant = compat.best_torch_variant(machine.driver, version, machine.cc, machine.platform)
        if variant is not None:
            return compat.torch_index_url(variant), f"{variant}: the newest CUDA variant of torch {version} for {machine.describe()}"
    raise ProfileError(f"no CUDA build of torch {torch_version or compat.latest_torch()} runs with "
                       f"{machine.describe()} (see `tbdoctor compat`); update the driver, or use --profile cpu")


def install_steps(profile: Profile, machine: Machine, own_sources: str = "") -> list[InstallStep]:
    """The pip steps of ``profile`` on ``machine``. ``own_sources`` names the user's own
    package sources (command line or pip configuration); when set, they replace the
    profile's index hints."""
    if profile.hardware not in ("any", machine.hardware):
        raise ProfileError(f"profile {profile.name} is for {profile.hardware} machines; this one has "
                           f"{machine.describe()} (try --profile auto)")
    steps = []
    for group in profile.groups:
        if group.when not in ("any", machine.hardware):
            continue
        index, note = group.index, ""
        if index == CUDA_INDEX:
            index, note = cuda_index(machine)
        if index and own_sources:
            steps.append(InstallStep(group.packages, (), f"{own_sources} used instead of the profile's index {index}"))
        else:
            steps.append(InstallStep(group.packages, ("--index-url", index) if index else (), note))
    return steps
