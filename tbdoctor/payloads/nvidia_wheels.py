# NVIDIA's CUDA wheels (nvidia-*, cuda-toolkit) installed in this environment, and the CUDA
# libraries they ship. Stdlib only, 3.8+. Imports no installed package.
# Reads the dist-info folders directly (name and version from the folder name, files from
# RECORD, as the wheel spec lays them out) instead of importing importlib.metadata, whose
# import alone costs more than this whole probe: it runs on every `tbdoctor check`.
import csv
import os
import re
import sys

from ._common import canonical, emit

_LIB = re.compile(r"^(?:lib)?(cuda|cudart|cudnn|nccl)(?:64_\d+)?(?:\.so(?:\.[0-9.]+)?|\.dll)$")
_DIST_INFO = re.compile(r"^((?:nvidia|cuda)[_.-][^-]*)-([^-]+)\.dist-info$", re.I)
_WANTED = re.compile(r"^(nvidia-.+|cuda-toolkit|cuda-runtime)$")


def _name(folder, fallback):
    try:
        with open(os.path.join(folder, "METADATA"), encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith("Name:"):
                    return line[5:].strip()
                if not line.strip():
                    break
    except OSError:
        pass
    return fallback


def _libraries(site, folder):
    found = []
    try:
        with open(os.path.join(folder, "RECORD"), encoding="utf-8", errors="replace", newline="") as fh:
            for row in csv.reader(fh):
                if not row:
                    continue
                match = _LIB.match(row[0].replace("\\", "/").rsplit("/", 1)[-1])
                if match:
                    found.append({"library": "lib" + match.group(1), "file": os.path.basename(row[0]),
                                  "path": os.path.normpath(os.path.join(site, row[0]))})
    except OSError:
        pass
    return found


def wheels():
    found, seen = [], set()
    for entry in sys.path:
        site = os.path.abspath(entry or ".")
        try:
            names = sorted(os.listdir(site))
        except OSError:
            continue
        for folder in names:
            match = _DIST_INFO.match(folder)
            key = canonical(match.group(1)) if match else ""
            if not match or not _WANTED.match(key) or key in seen:
                continue  # not NVIDIA's, or shadowed by an earlier sys.path entry
            seen.add(key)
            path = os.path.join(site, folder)
            found.append({"name": _name(path, key), "canonical": key, "version": match.group(2),
                          "location": site, "libraries": _libraries(site, path)})
    return sorted(found, key=lambda w: w["canonical"])


emit({"prefix": sys.prefix, "wheels": wheels()})
