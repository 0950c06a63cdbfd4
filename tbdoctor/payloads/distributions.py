# Installed distributions, their requirements, and modules shadowed by other folders.
# Stdlib only, 3.8+. Imports no installed package.
import importlib.machinery
import json
import os
import platform
import sys

from importlib import metadata

from ._common import canonical, context, emit, headers, integrity, read_meta, top_level_names


def marker_environment():
    """PEP 508 marker variables of this interpreter (as packaging computes them)."""
    impl = sys.implementation.version
    impl_version = "%d.%d.%d" % (impl.major, impl.minor, impl.micro)
    if impl.releaselevel != "final":
        impl_version += impl.releaselevel[0] + str(impl.serial)
    return {
        "implementation_name": sys.implementation.name,
        "implementation_version": impl_version,
        "os_name": os.name,
        "platform_machine": platform.machine(),
        "platform_release": platform.release(),
        "platform_system": platform.system(),
        "platform_version": platform.version(),
        "python_full_version": platform.python_version(),
        "platform_python_implementation": platform.python_implementation(),
        "python_version": ".".join(platform.python_version_tuple()[:2]),
        "sys_platform": sys.platform,
    }


def editable_root(dist):
    """The project folder of an editable install (PEP 660 direct_url.json), or None."""
    try:
        info = json.loads(read_meta(dist, "direct_url.json") or "null")
    except ValueError:
        return None
    if not isinstance(info, dict) or not (info.get("dir_info") or {}).get("editable"):
        return None
    url = info.get("url") or ""
    if not url.startswith("file:"):
        return None
    from urllib.parse import unquote, urlparse
    from urllib.request import url2pathname
    return url2pathname(unquote(urlparse(url).path))


def describe(dist):
    path = getattr(dist, "_path", None)
    meta_dir = str(path) if path is not None else None
    meta = headers(dist)
    name = meta["Name"]
    requires = meta.get_all("Requires-Dist")
    if requires is None and name and read_meta(dist, "requires.txt"):
        requires = dist.requires  # an egg-info keeps them in requires.txt
    return {
        "name": name,
        "canonical": canonical(name) if name else None,
        "version": meta["Version"] if name else None,
        "location": os.path.dirname(meta_dir) if meta_dir else None,
        "metadata_dir": meta_dir,
        "requires": list(requires or ()),
        "requires_python": meta["Requires-Python"] if name else None,
        "installer": (read_meta(dist, "INSTALLER") or "").strip() or None,
        "top_level": top_level_names(dist) if name else [],
        "editable_root": editable_root(dist) if name else None,
    }


def origin_of(name, path):
    """Where ``import name`` would come from when searching ``path``, without importing it."""
    try:
        spec = importlib.machinery.PathFinder.find_spec(name, path)
    except Exception:
        return None
    if spec is None:
        return None
    if spec.origin not in (None, "namespace"):
        return spec.origin
    locations = list(spec.submodule_search_locations or ())
    return locations[0] if locations else None


def _stems(folder):
    """The first dotted part of every name in ``folder`` (a superset of the modules it
    offers); None for a file (a zip: always searched), an empty set where there is nothing."""
    try:
        return {entry.partition(".")[0] for entry in os.listdir(folder or ".")}
    except OSError:
        return None if os.path.isfile(folder) else set()


def shadowed(dists, cwd):
    """Top-level modules of installed distributions that another folder provides first.
    Each folder is listed once; ``find_spec`` runs only on the folder that has the name first."""
    found = []
    search = [p for p in sys.path if p]
    extra = [("current directory", cwd)] if cwd and cwd not in search else []
    stems, real = {}, {}

    def resolved(path):
        if path not in real:
            real[path] = os.path.realpath(path)
        return real[path]

    def inside(path, homes):
        if (os.path.normpath(path) + os.sep).startswith(homes):
            return True
        folder, name = os.path.split(path)
        own = resolved(path) if os.path.islink(path) else os.path.join(resolved(folder), name)
        return (own + os.sep).startswith(homes)

    for d in dists:
        if not d["location"]:
            continue
        homes = tuple({os.path.normpath(p) + os.sep for h in (d["location"], d["editable_root"]) if h
                       for p in (h, resolved(h))})
        for module in d["top_level"]:
            for label, path in [("sys.path", search)] + [(lbl, [p]) for lbl, p in extra]:
                first = next((p for p in path
                              if (stems[p] if p in stems else stems.setdefault(p, _stems(p))) is None
                              or module in stems[p]), None)
                origin = first and origin_of(module, [first])
                if first and (origin is None or os.path.isdir(origin)):  # a namespace portion: the full search decides
                    origin = origin_of(module, path)
                if origin and not inside(origin, homes):
                    found.append({"module": module, "distribution": d["name"], "version": d["version"],
                                  "installed_at": d["location"], "shadowed_by": origin, "via": label})
                    break
    return found


# The stack's distributions: RECORD checked against the files on every check (hashes with -v, folders with --quick).
_STACK = ("torch", "tensorboardx", "tensorboard", "tb-nightly", "tensorboard-data-server", "tensorflow",
          "tensorflow-cpu", "tf-nightly", "tf-keras", "keras", "numpy", "protobuf", "jax", "jaxlib")


def stack_integrity(described, how):
    """``integrity`` of the stack's distributions, from (Distribution, description) pairs."""
    found = {}
    for dist, d in described:
        if d["canonical"] in _STACK and d["canonical"] not in found:  # the first on sys.path: what import sees
            found[d["canonical"]] = integrity(dist, how)
    return {k: v for k, v in found.items() if v is not None}


def _meta_folder(path):
    """The .dist-info/.egg-info folder (or egg-info file) a packaged path belongs to, or None."""
    parts = path.replace("\\", "/").split("/")
    for i, part in enumerate(parts):
        if part.endswith((".dist-info", ".egg-info")):
            return "/".join(parts[:i + 1])
    return None


def owners(paths):
    """Metadata folders owned by conda (conda-meta/*.json files lists) or the OS package
    manager (dpkg's info/*.list files; else ``rpm -qf``): path -> {manager, package}."""
    found = {}
    norm = {os.path.normcase(os.path.normpath(p)): p for p in paths}  # conda lists paths with "/" everywhere
    conda_meta = os.path.join(sys.prefix, "conda-meta")
    if os.path.isdir(conda_meta):
        for entry in sorted(os.listdir(conda_meta)):
            if entry.endswith(".json"):
                try:
                    with open(os.path.join(conda_meta, entry), encoding="utf-8") as fh:
                        record = json.load(fh)
                except (OSError, ValueError):
                    continue
                for rel in record.get("files") or ():
                    folder = _meta_folder(rel)
                    key = folder and os.path.normcase(os.path.normpath(os.path.join(sys.prefix, folder)))
                    if key in norm:
                        found[norm[key]] = {"manager": "conda", "package": record.get("name")}
    system = [p for p in paths if p not in found and p.startswith("/usr/")]  # where dpkg and rpm install
    info = "/var/lib/dpkg/info"
    if system and os.path.isdir(info):
        wanted = set(system)
        for entry in sorted(os.listdir(info)):
            if entry.endswith(".list"):
                try:
                    with open(os.path.join(info, entry), encoding="utf-8", errors="replace") as fh:
                        for line in fh:
                            if line.rstrip("\n") in wanted:
                                found[line.rstrip("\n")] = {"manager": "dpkg", "package": entry[:-5].split(":")[0]}
                except OSError:
                    continue
    elif system:
        import shutil
        import subprocess
        if shutil.which("rpm"):
            try:
                out = subprocess.run(["rpm", "-qf", "--queryformat", "%{NAME}\n"] + system, capture_output=True,
                                     text=True, timeout=20).stdout.splitlines()
            except (OSError, subprocess.SubprocessError):
                out = []
            for path, name in zip(system, out) if len(out) == len(system) else ():
                if name and " " not in name:  # "file ... is not owned by any package"
                    found[path] = {"manager": "rpm", "package": name}
    return found


def probe(ctx):
    """The ``packages`` facts."""
    described = [(d, describe(d)) for d in metadata.distributions()]
    broken = [d["metadata_dir"] for _, d in described if not d["name"]]
    dists = [d for _, d in described if d["name"]]
    by_name = {}
    for d in dists:
        by_name.setdefault(d["canonical"], []).append(d)
    first = [group[0] for group in by_name.values()]  # what import and pip would see
    return {
        "distributions": dists,
        "broken_metadata": broken,
        "marker_environment": marker_environment(),
        "shadowed_modules": shadowed(first, ctx.get("cwd")),
        "integrity": stack_integrity([p for p in described if p[1]["name"]], ctx.get("integrity") or "files"),
        "hashed": ctx.get("integrity") == "hashes",
        "owners": owners({d["metadata_dir"] for d in dists if d["metadata_dir"]} | set(broken)),
    }


if __name__ == "__main__":  # fix's snapshot runs it alone; checks run it with python_env's (python_packages.py)
    emit(probe(context()))
