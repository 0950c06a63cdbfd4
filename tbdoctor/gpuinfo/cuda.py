"""The ``cuda`` host probe: CUDA toolkits (every nvcc and its version, which one wins on
PATH, CUDA_HOME / CUDA_PATH) and CUDA libraries (the dynamic loader's cache,
LD_LIBRARY_PATH, and NVIDIA's pip wheels in the target environment, read by a
small payload the target runs).

facts["cuda"] = {
  "toolkits": [{"nvcc", "paths", "realpath", "root", "version": "13.0", "release": "13.0.88",
                "found_via": ["PATH", "CUDA_HOME", "standard location", "target environment"],
                "on_path": bool, "from_cuda_home": bool, "error"}],
  "path_nvcc": str | None,                 # the nvcc a shell runs
  "env": {"CUDA_HOME", "CUDA_PATH", "CUDA_ROOT"},
  "ld_library_path": [str] | None,
  "ldconfig": bool,                        # whether `ldconfig -p` could be read
  "libraries": {"libcuda" | "libcudart" | "libcudnn" | "libnccl":
                [{"path", "version", "source": "ldconfig|LD_LIBRARY_PATH|wsl|pip", "entry"?, "wheel"?}]},
  "pip_wheels": [{"name", "version", "location"}] | None,   # None: the payload failed
  "pip_wheels_error": str | None,
}
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import sys

from tbdoctor import payload

LIBRARIES = ("libcuda", "libcudart", "libcudnn", "libnccl")
_WINDOWS = sys.platform == "win32"
_NVCC = "nvcc.exe" if _WINDOWS else "nvcc"
_SONAME = re.compile(r"^(libcuda|libcudart|libcudnn|libnccl)\.so(?:\.([0-9][0-9.]*))?$")
_RELEASE = re.compile(r"release (\d+\.\d+), V(\d+\.\d+\.\d+)")
_HOME_VARS = ("CUDA_HOME", "CUDA_PATH", "CUDA_ROOT")
STEP_TIMEOUT = 10.0


def _standard_locations() -> list[str]:
    if _WINDOWS:
        base = os.path.join(os.environ.get("ProgramFiles", r"C:\Program Files"), "NVIDIA GPU Computing Toolkit", "CUDA")
        return sorted(glob.glob(os.path.join(base, "v*", "bin", _NVCC)))
    return sorted(glob.glob("/usr/local/cuda*/bin/nvcc")) + [p for p in ("/opt/cuda/bin/nvcc",) if os.path.isfile(p)]


def _candidates(prefix: str | None) -> list[tuple[str, str]]:
    found = []
    for entry in os.environ.get("PATH", "").split(os.pathsep):
        path = os.path.join(entry, _NVCC)
        if entry and os.path.isfile(path) and os.access(path, os.X_OK):
            found.append((path, "PATH"))
    for var in _HOME_VARS:
        home = os.environ.get(var)
        if home and os.path.isfile(os.path.join(home, "bin", _NVCC)):
            found.append((os.path.join(home, "bin", _NVCC), var))
    found += [(p, "standard location") for p in _standard_locations()]
    if prefix:
        for rel in ("bin", "Library/bin", "Scripts"):
            path = os.path.join(prefix, rel, _NVCC)
            if os.path.isfile(path):
                found.append((path, "target environment"))
    return found


def _root(realpath: str) -> str | None:
    """The toolkit folder above bin/nvcc, when it looks like one (a wrapper script has none)."""
    root = os.path.dirname(os.path.dirname(realpath))
    markers = ("version.json", "version.txt", os.path.join("include", "cuda_runtime.h"), "targets")
    return root if any(os.path.exists(os.path.join(root, m)) for m in markers) else None


def _resolve(run, timeout: float, path: str) -> str:
    """The real nvcc behind ``path``: its realpath, or for a wrapper script, the bin folder nvcc reports."""
    real = os.path.realpath(path)
    if _root(real) is not None:
        return real
    try:  # a small shell wrapper (`exec /usr/local/cuda-X/bin/nvcc "$@"`) names its target
        with open(real, "rb") as fh:
            head = fh.read(4096).decode("utf-8", "replace")
    except OSError:
        head = ""
    if head.startswith("#!"):
        for named in re.findall(r"(/[^\s\"';]+/bin/nvcc)\b", head):
            if os.path.isfile(named) and _root(os.path.realpath(named)):
                return os.path.realpath(named)
    result = run([real, "--dryrun", "-E", "-x", "cu", os.devnull], timeout)
    match = re.search(r"^#\$ _HERE_=(.+)$", (result.stdout or "") + (result.stderr or ""), re.M)
    behind = os.path.realpath(os.path.join(match[1].strip(), _NVCC)) if match else real
    return behind if os.path.isfile(behind) else real


def toolkits(run, timeout: float, prefix: str | None) -> list[dict]:
    resolved: dict[str, str] = {}

    def real_nvcc(path: str) -> str:
        key = os.path.realpath(path)
        if key not in resolved:
            resolved[key] = _resolve(run, timeout, path)
        return resolved[key]

    winner = shutil.which("nvcc")
    home = next((os.environ[v] for v in _HOME_VARS if os.environ.get(v)), None)
    home_nvcc = os.path.join(home, "bin", _NVCC) if home else None
    by_real: dict[str, dict] = {}
    for path, via in _candidates(prefix):
        real = real_nvcc(path)
        kit = by_real.get(real)
        if kit is None:
            kit = by_real[real] = {"nvcc": path, "paths": [], "realpath": real, "root": _root(real), "version": None,
                                   "release": None, "found_via": [], "on_path": False, "from_cuda_home": False,
                                   "error": None}
        if path not in kit["paths"]:
            kit["paths"].append(path)
        if via not in kit["found_via"]:
            kit["found_via"].append(via)
    for real, kit in by_real.items():
        kit["on_path"] = bool(winner) and real_nvcc(winner) == real
        kit["from_cuda_home"] = bool(home_nvcc) and os.path.isfile(home_nvcc) and real_nvcc(home_nvcc) == real
        result = run([real, "--version"], timeout)
        match = _RELEASE.search(result.stdout or "")
        if match:
            kit.update(version=match[1], release=match[2])
        else:
            kit["error"] = result.failure() or "printed no CUDA release"
    return list(by_real.values())


def _version_of(path: str, soname_version: str | None) -> str | None:
    """The fullest version in the file name the soname resolves to (libcuda.so.1 -> 535.104.05)."""
    match = re.search(r"\.so\.([0-9][0-9.]*)$", os.path.realpath(path))
    return match[1] if match else soname_version


def _ldconfig(run, timeout: float) -> tuple[list[dict], bool]:
    """Libraries in the dynamic loader's cache, and whether the cache could be read."""
    exe = shutil.which("ldconfig") or next((p for p in ("/sbin/ldconfig", "/usr/sbin/ldconfig") if os.path.isfile(p)),
                                           None)
    if not exe:
        return [], False
    result = run([exe, "-p"], timeout)
    found = []
    for line in (result.stdout or "").splitlines() if result.ok else ():
        name, _, path = line.strip().partition(" => ")
        match = _SONAME.match(name.split(" ", 1)[0])
        if match and path:
            found.append({"library": match[1], "path": path.strip(), "version": _version_of(path.strip(), match[2]),
                          "source": "ldconfig"})
    return found, result.ok


def _scan_dir(entry: str, source: str) -> list[dict]:
    try:
        names = sorted(os.listdir(entry))
    except OSError:
        return []
    found = []
    for name in names:
        match = _SONAME.match(name)
        if match and match[2]:  # versioned names only: libfoo.so is the link-time alias
            path = os.path.join(entry, name)
            found.append({"library": match[1], "path": path, "version": _version_of(path, match[2]),
                          "source": source, "entry": entry})
    return found


def _wheels(ctx) -> tuple[dict | None, str | None]:
    try:
        return payload.run_payload(ctx.target, "nvidia_wheels.py", min(STEP_TIMEOUT * 3, ctx.timeout)), None
    except payload.ProbeFailed as exc:
        return None, str(exc)


def probe(ctx) -> dict:
    step = min(STEP_TIMEOUT, ctx.timeout)
    wheels, wheels_error = _wheels(ctx)
    ld_path = [e for e in os.environ.get("LD_LIBRARY_PATH", "").split(os.pathsep) if e] if not _WINDOWS else None
    found, loader_cache = [], False
    if sys.platform.startswith("linux"):
        found, loader_cache = _ldconfig(ctx.run, step)
        for entry in ld_path or ():
            found += _scan_dir(entry, "LD_LIBRARY_PATH")
        found += _scan_dir("/usr/lib/wsl/lib", "wsl") if os.path.isdir("/usr/lib/wsl/lib") else []
    for wheel in (wheels or {}).get("wheels", ()):
        for lib in wheel["libraries"]:
            match = _SONAME.match(lib["file"])
            found.append({"library": lib["library"], "path": lib["path"],
                          "version": match[2] if match and match[2] else None, "source": "pip",
                          "wheel": wheel["name"], "wheel_version": wheel["version"]})
    libraries: dict[str, list[dict]] = {name: [] for name in LIBRARIES}
    seen = set()
    for item in found:
        key = (item["source"], item.get("entry"), os.path.realpath(item["path"]))
        if item["library"] in libraries and key not in seen:
            seen.add(key)
            libraries[item.pop("library")].append(item)
    return {
        "toolkits": toolkits(ctx.run, step, (wheels or {}).get("prefix")),
        "path_nvcc": shutil.which("nvcc"),
        "env": {v: os.environ.get(v) for v in _HOME_VARS},
        "ld_library_path": ld_path,
        "ldconfig": loader_cache,
        "libraries": libraries,
        "pip_wheels": None if wheels is None else [{k: w[k] for k in ("name", "version", "location")}
                                                    for w in wheels["wheels"]],
        "pip_wheels_error": wheels_error,
    }
