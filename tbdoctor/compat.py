"""Compatibility answers from the bundled knowledge base: driver <-> CUDA, GPU <-> architecture,
torch release <-> CUDA variants and arch lists, TensorFlow tested configurations.

Pure: reads ``checks/cuda.toml``, ``gpus.toml``, ``torch.toml`` and
``tensorflow.toml`` through ``tables`` and nothing else. Anything not in a table
is unknown (None), never guessed.

Minor-version compatibility (MVC) applies to ``min_driver`` and
``driver_supports_cuda``: since CUDA 11 a runtime of any X.Y runs on every
driver at or above the MVC floor of major X (12.x: 525.60.13 on Linux). That is
the question for pip wheels (torch, TensorFlow, nvidia-*-cuXX), which bundle
their CUDA runtime: below the floor nothing runs ("driver too old"). What MVC
does not cover (PTX newer than the driver, some new driver APIs) needs the
toolkit's own driver, ``toolkit_driver``.
"""

from __future__ import annotations

import re

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from tbdoctor import tables

_VARIANT = re.compile(r"^cu(\d\d)(\d+)$")


def parse_version(text) -> Version | None:
    """``text`` as a Version, or None when it is missing or not a version."""
    try:
        return Version(str(text).strip())
    except (InvalidVersion, TypeError):
        return None


def major_minor(version) -> tuple[int, int] | None:
    """(12, 2) for "12.2", "12.2.2", "V12.2.140" or 12020 (NVML's integer form)."""
    if isinstance(version, int):
        return (version // 1000, version % 1000 // 10) if version > 0 else None
    match = re.match(r"^\s*[vV]?(\d+)(?:\.(\d+))?", str(version or ""))
    if not match:
        return None
    return int(match[1]), int(match[2] or 0)


def _platform(platform: str) -> str:
    """The driver table for a platform: "windows" for win32 and WSL (the Windows driver), else "linux"."""
    return "windows" if platform.lower().startswith(("win", "wsl")) else "linux"


# --- driver <-> CUDA ---------------------------------------------------------

def min_driver(cuda: str, platform: str = "linux") -> str | None:
    """Lowest driver that runs a CUDA ``cuda`` runtime (minor-version compatibility floor of its major)."""
    mm = major_minor(cuda)
    if mm is None:
        return None
    return tables.load("cuda")["minor_version_compatibility"][_platform(platform)].get(str(mm[0]))


def toolkit_driver(cuda: str, platform: str = "linux") -> str | None:
    """The driver the CUDA ``cuda`` toolkit release shipped with (full feature set), or None."""
    mm = major_minor(cuda)
    if mm is None:
        return None
    key = _platform(platform)
    rows = [r for r in tables.load("cuda")["toolkit_driver"]["releases"] if major_minor(r["cuda"]) == mm and key in r]
    exact = [r for r in rows if r["cuda"] == str(cuda).strip()]
    chosen = exact or sorted(rows, key=lambda r: Version(r["cuda"]))[:1]
    return chosen[0][key] if chosen else None


def driver_supports_cuda(driver: str, cuda: str, platform: str = "linux") -> bool | None:
    """Whether ``driver`` runs a CUDA ``cuda`` runtime (MVC); None when either is unknown."""
    need, have = parse_version(min_driver(cuda, platform)), parse_version(driver)
    if need is None or have is None:
        return None
    return have >= need


def cuda_families(platform: str = "linux") -> dict[str, str]:
    """CUDA major -> MVC driver floor, e.g. {"12": "525.60.13"}."""
    return dict(tables.load("cuda")["minor_version_compatibility"][_platform(platform)])


def _row_driver(row: dict, key: str, platform: str) -> str | None:
    """A toolkit row's driver; Windows rows of 13.1+ (no bundled driver) take the 13.x floor; None when unknown."""
    if key in row:
        return row[key]
    return min_driver(row["cuda"], platform) if key == "windows" and "linux" in row else None


def full_support_cuda(driver: str, platform: str = "linux") -> str | None:
    """The newest CUDA X.Y whose toolkit driver is not newer than ``driver`` (what the driver fully supports)."""
    have, key = parse_version(driver), _platform(platform)
    if have is None:
        return None
    best = None
    for row in tables.load("cuda")["toolkit_driver"]["releases"]:
        need = parse_version(_row_driver(row, key, platform))
        if need is not None and need <= have and (best is None or Version(row["cuda"]) > best):
            best = Version(row["cuda"])
    return f"{best.major}.{best.minor}" if best else None


# --- GPUs and architectures --------------------------------------------------

def gpu_compute_capability(name: str) -> str | None:
    """Compute capability of a product name ("NVIDIA GeForce RTX 4090" -> "8.9"), None when unknown."""
    for row in tables.load("gpus")["models"]["list"]:
        if re.search(row["pattern"], name or "", re.IGNORECASE):
            return row["cc"]
    return None


def architecture(cc: str) -> dict | None:
    """The architecture row (name, min_cuda, max_cuda, last_driver_branch) of a compute capability."""
    mm = major_minor(cc)
    for row in tables.load("gpus")["architectures"]["list"]:
        if any(major_minor(c) == mm for c in row["compute_capabilities"]):
            return dict(row)
    return None


def driver_supports_gpu(driver: str, cc: str) -> bool | None:
    """False when ``driver`` is newer than the last branch that runs GPUs of ``cc`` (it ignores them)."""
    arch, have = architecture(cc), parse_version(driver)
    if arch is None or have is None:
        return None
    last = arch.get("last_driver_branch")
    return True if last is None else have.release[0] <= int(last)


def cuda_supports_cc(cuda: str, cc: str) -> bool | None:
    """Whether toolkit ``cuda`` can compile for compute capability ``cc``; None when unknown."""
    arch, mm = architecture(cc), major_minor(cuda)
    if arch is None or mm is None:
        return None
    if "min_cuda" in arch and mm < major_minor(arch["min_cuda"]):
        return False
    return not ("max_cuda" in arch and mm > major_minor(arch["max_cuda"]))


def _arch_entry(entry: str) -> tuple[str, tuple[int, int]] | None:
    """("sm", (8, 6)) for sm_86; ("sm_a", (9, 0)) for sm_90a; ("compute", ...) for compute_XY or X.Y+PTX."""
    entry = entry.strip()
    match = re.fullmatch(r"(sm|compute)_(\d+)(\d)([af]?)", entry)
    if match:
        kind = match[1] + ("_a" if match[4] else "")
        return kind, (int(match[2]), int(match[3]))
    match = re.fullmatch(r"(\d+)\.(\d+)(\+PTX)?", entry, re.IGNORECASE)
    if match:
        return ("compute" if match[3] else "sm"), (int(match[1]), int(match[2]))
    return None


def arch_supported(cc: str, arch_list: list[str]) -> bool:
    """Whether a GPU of compute capability ``cc`` can run code built for ``arch_list``.

    A cubin sm_XY runs on the same major with minor >= Y (CUDA binary
    compatibility); an arch-specific sm_XYa only on exactly X.Y; PTX compute_XY
    (or "X.Y+PTX") is JIT-compiled for any X.Y or newer.
    """
    mm = major_minor(cc)
    if mm is None:
        return False
    for entry in arch_list or ():
        parsed = _arch_entry(entry)
        if parsed is None:
            continue
        kind, (major, minor) = parsed
        if kind == "sm" and mm[0] == major and mm[1] >= minor:
            return True
        if kind == "sm_a" and mm == (major, minor):
            return True
        if kind == "compute" and mm >= (major, minor):
            return True
    return False


# --- PyTorch -----------------------------------------------------------------

def _torch() -> dict:
    return tables.load("torch")


def torch_release(torch_version: str | None) -> dict | None:
    """The release row of "2.8", "2.8.0" or "2.8.0+cu128"; the latest verified one for None."""
    rows = _torch()["releases"]["list"]
    if torch_version is None:
        verified = [r for r in rows if r["variants"]]
        return max(verified, key=lambda r: Version(r["version"])) if verified else None
    parsed = parse_version(str(torch_version).split("+", 1)[0])
    if parsed is None:
        return None
    return next((r for r in rows if Version(r["version"]).release[:2] == parsed.release[:2]), None)


def latest_torch() -> str | None:
    row = torch_release(None)
    return row["version"] if row else None


def torch_variants(torch_version: str | None) -> list[str]:
    """Published CUDA variants of that torch release, oldest CUDA first; [] when unknown."""
    row = torch_release(torch_version)
    return sorted(row["variants"], key=lambda v: major_minor(variant_cuda(v)) or (0, 0)) if row else []


def variant_cuda(variant: str) -> str | None:
    """"12.8" for "cu128", "13.0" for "cu130"; None for "cpu" or anything else."""
    match = _VARIANT.match(variant or "")
    return f"{int(match[1])}.{int(match[2])}" if match else None


def torch_arch_list(torch_version: str | None, variant: str) -> list[str] | None:
    """GPU code compiled into that build (``torch.cuda.get_arch_list()``), None when unknown."""
    row = torch_release(torch_version)
    if row is None:
        return None
    version = Version(row["version"])
    if variant not in row["variants"]:
        return None  # a build the table does not list (or a release whose builds are unknown)
    for entry in _torch()["arch_lists"]["list"]:
        try:
            in_range = version in SpecifierSet(entry["torch"])
        except InvalidSpecifier:
            continue
        if in_range and variant in entry["variants"]:
            return list(entry["arch"])
    return None


def torch_index_url(variant: str) -> str:
    return _torch()["index_url"] + variant


def best_torch_variant(driver: str, torch_version: str | None, cc: str | None = None,
                       platform: str = "linux") -> str | None:
    """The newest CUDA variant of that release the driver can run and (given ``cc``) that has code for the GPU."""
    for variant in reversed(torch_variants(torch_version)):
        if not driver_supports_cuda(driver, variant_cuda(variant), platform):
            continue
        if cc is not None and not arch_supported(cc, torch_arch_list(torch_version, variant) or []):
            continue
        return variant
    return None


def torch_releases() -> list[str]:
    """Every torch minor release in the table, oldest first."""
    return [r["version"] for r in sorted(_torch()["releases"]["list"], key=lambda r: Version(r["version"]))]


# --- TensorFlow --------------------------------------------------------------

def tensorflow_config(tf_version: str, platform: str = "linux") -> dict | None:
    """The tested build configuration (python_min/max, cuda, cudnn) of that TF minor release."""
    parsed = parse_version(str(tf_version).split("+", 1)[0])
    if parsed is None:
        return None
    table = tables.load("tensorflow")["windows_gpu" if _platform(platform) == "windows" else "linux_gpu"]
    return next((dict(r) for r in table["list"] if Version(r["version"]).release[:2] == parsed.release[:2]), None)


# --- the limits of this knowledge --------------------------------------------

def kb_date() -> str:
    """The month the knowledge base was last brought up to date ("2026-12")."""
    return tables.load("knowledge")["date"]


def newest_known(kind: str) -> str | None:
    """The newest driver, cuda, torch, tensorflow or tensorboard version the knowledge base knows."""
    if kind == "driver":  # branches are numbered alike on Linux and Windows (R610 = 61x.yy)
        values = [r[k] for r in tables.load("cuda")["toolkit_driver"]["releases"] for k in ("linux", "windows") if k in r]
    elif kind == "cuda":
        values = [r["cuda"] for r in tables.load("cuda")["toolkit_driver"]["releases"]]
    elif kind == "torch":
        values = [r["version"] for r in _torch()["releases"]["list"]]
    elif kind == "tensorflow":
        values = [r["version"] for r in tables.load("tensorflow")["linux_gpu"]["list"]]
    elif kind == "tensorboard":
        values = [tables.load("knowledge")["tensorboard"]["newest"]]
    else:
        raise ValueError(kind)
    parsed = [(v, text) for v, text in zip(map(parse_version, values), values) if v is not None]
    return max(parsed)[1] if parsed else None


def newer_than_kb(kind: str, version) -> bool:
    """Whether ``version`` is newer than anything of that kind in the knowledge base.

    Compared at the precision the tables have: drivers by branch (610 of
    610.43.02), CUDA and the frameworks by major.minor (a patch release of a
    known minor release is known).
    """
    have = parse_version(str(version or "").split("+", 1)[0])
    newest = parse_version(newest_known(kind))
    if have is None or newest is None:
        return False
    digits = 1 if kind == "driver" else 2
    return have.release[:digits] > newest.release[:digits]
