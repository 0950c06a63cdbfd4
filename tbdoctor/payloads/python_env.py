# Facts about the interpreter, its environment kind and pip (run by python_packages.py).
# Stdlib only, 3.8+.
import os
import platform
import site
import sys
import sysconfig

from ._common import first_line, headers

def read_pyvenv_cfg(prefix):
    cfg = {}
    path = os.path.join(prefix, "pyvenv.cfg")
    try:
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                key, sep, value = line.partition("=")
                if sep:
                    cfg[key.strip().lower()] = value.strip()
    except OSError:
        return None
    return cfg


def environment_kind(cfg):
    """(kind, evidence) for this interpreter's environment."""
    prefix = sys.prefix
    in_venv = sys.prefix != getattr(sys, "base_prefix", sys.prefix)
    if cfg is not None and in_venv:
        if "uv" in cfg:
            return "uv", "pyvenv.cfg has 'uv = %s'" % cfg["uv"]
        if "virtualenv" in cfg:
            return "virtualenv", "pyvenv.cfg has 'virtualenv = %s'" % cfg["virtualenv"]
        return "venv", "pyvenv.cfg in %s" % prefix
    if os.path.isdir(os.path.join(prefix, "conda-meta")):
        return "conda", "conda-meta/ in %s" % prefix
    pyenv_root = os.environ.get("PYENV_ROOT") or os.path.join(os.path.expanduser("~"), ".pyenv")
    if os.path.realpath(prefix).startswith(os.path.realpath(pyenv_root) + os.sep):
        return "pyenv", "prefix under %s" % pyenv_root
    return "system", "no venv, conda or pyenv marker"


def externally_managed():
    """Path of the PEP 668 EXTERNALLY-MANAGED marker in force, or None."""
    if sys.prefix != getattr(sys, "base_prefix", sys.prefix):
        return None  # a venv is never externally managed
    marker = os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED")
    return marker if os.path.isfile(marker) else None


def pip_config_files():
    """pip's configuration files in the order pip loads them (later wins), per pip's
    documentation ("Configuration": global, user, site; PIP_CONFIG_FILE)."""
    forced = os.environ.get("PIP_CONFIG_FILE")
    if forced == os.devnull:
        return []
    name = "pip.ini" if os.name == "nt" else "pip.conf"
    home = os.path.expanduser("~")
    if os.name == "nt":
        program_data = os.environ.get("ALLUSERSPROFILE", "C:\\ProgramData")
        globals_ = [os.path.join(program_data, "pip", name)]
        appdata = os.environ.get("APPDATA", os.path.join(home, "AppData", "Roaming"))
        users = [os.path.join(home, "pip", name), os.path.join(appdata, "pip", name)]
    else:
        xdg_dirs = os.environ.get("XDG_CONFIG_DIRS") or "/etc/xdg"
        globals_ = [os.path.join(d, "pip", name) for d in reversed(xdg_dirs.split(os.pathsep))] + ["/etc/pip.conf"]
        if sys.platform == "darwin":
            globals_.insert(0, "/Library/Application Support/pip/pip.conf")
        xdg_home = os.environ.get("XDG_CONFIG_HOME") or os.path.join(home, ".config")
        users = [os.path.join(home, ".pip", name), os.path.join(xdg_home, "pip", name)]
        if sys.platform == "darwin":
            users.append(os.path.join(home, "Library", "Application Support", "pip", name))
    files = globals_ + users
    if forced:
        files.append(forced)
    return files + [os.path.join(sys.prefix, name)]


def pip_facts():
    """pip's version and the configuration it would use, read without importing pip.

    Importing pip's own configuration module costs about 0.35 s, most of a quick
    check, so the files and PIP_* variables are read here as pip documents them.
    Keys are spelled as `pip config list` prints them (section.key, :env:.key).
    """
    try:
        from importlib.metadata import version
        pip_version = version("pip")
    except Exception:
        return {"installed": False}
    import configparser
    facts = {"installed": True, "version": pip_version, "config": {}, "config_error": None, "config_files": []}
    for path in pip_config_files():
        if not os.path.isfile(path):
            continue
        parser = configparser.RawConfigParser()
        try:
            parser.read(path, encoding="utf-8")
        except (configparser.Error, UnicodeDecodeError) as exc:
            facts["config_error"] = "%s: %s" % (path, first_line(exc))
            continue
        facts["config_files"].append(path)
        for section in parser.sections():
            for key, value in parser.items(section):
                facts["config"]["%s.%s" % (section, key.replace("_", "-"))] = value
    for key, value in os.environ.items():
        if key.startswith("PIP_") and key != "PIP_CONFIG_FILE" and value:
            facts["config"][":env:." + key[4:].lower().replace("_", "-")] = value
    return facts


def user_site():
    path = site.getusersitepackages() if hasattr(site, "getusersitepackages") else None
    return {
        "enabled": bool(site.ENABLE_USER_SITE),
        "path": path,
        "exists": bool(path and os.path.isdir(path)),
        "on_sys_path": bool(path and path in sys.path),
    }


def site_dirs():
    dirs = list(site.getsitepackages()) if hasattr(site, "getsitepackages") else []
    dirs += [site.getusersitepackages() if hasattr(site, "getusersitepackages") else None,
             sysconfig.get_path("purelib"), sysconfig.get_path("platlib")]
    seen = []
    for d in dirs:
        if d and os.path.isdir(d) and d not in seen:
            seen.append(d)
    return seen


def broken_pth():
    """.pth files that fail at every start-up: each is run again by site.addpackage itself
    (the very code that prints "Error processing line N of ...pth" and ignores the rest),
    so a line that works there (a namespace -nspkg.pth reading its caller's sitedir) passes."""
    import contextlib
    import io
    import site
    found = []
    saved = list(sys.path)
    for folder in site_dirs():
        for name in sorted(os.listdir(folder)):
            path = os.path.join(folder, name)
            if not name.endswith(".pth") or name.startswith(".") or not os.path.isfile(path):
                continue
            said = io.StringIO()
            try:
                with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(said):
                    site.addpackage(folder, name, set())
            except Exception:  # noqa: BLE001 (addpackage reports its own errors; anything else is not a start-up failure)
                continue
            finally:
                sys.path[:] = saved
            report = said.getvalue().splitlines()
            head = [i for i, ln in enumerate(report) if ln.startswith("Error processing line ")]
            if not head:
                continue
            number = int(report[head[0]].split()[3])
            tail = [ln.strip() for ln in report[head[0] + 1:] if ln.strip() and not ln.startswith("Remainder of file")]
            try:
                with open(path, encoding="utf-8", errors="replace") as fh:
                    text = fh.read().splitlines()[number - 1]
            except (OSError, IndexError):
                text = ""
            found.append({"file": path, "line": number, "text": text[:300], "error": (tail or ["error"])[-1][:300],
                          "owner": pth_owner(folder, name, path)})
    return found


def pth_owner(folder, name, path):
    """Who installed a .pth: a distribution (RECORD), conda (conda-meta) or dpkg; None if nobody."""
    from importlib import metadata
    for dist in metadata.distributions(path=[folder]):
        if any(row.split(",", 1)[0] == name for row in (dist.read_text("RECORD") or "").splitlines()):
            meta = headers(dist)
            return {"kind": "pip", "name": meta["Name"], "version": meta["Version"]}
    for meta_dir, kind in ((os.path.join(sys.prefix, "conda-meta"), "conda"), ("/var/lib/dpkg/info", "dpkg")):
        if not os.path.isdir(meta_dir):
            continue
        for entry in os.listdir(meta_dir):
            if not entry.endswith((".json", ".list")):
                continue
            try:
                with open(os.path.join(meta_dir, entry), encoding="utf-8", errors="replace") as fh:
                    text = fh.read()
            except OSError:
                continue
            if kind == "conda" and os.path.relpath(path, sys.prefix).replace(os.sep, "/") in text:
                return {"kind": "conda", "name": entry[:-5].rsplit("-", 2)[0]}
            if kind == "dpkg" and path in text.splitlines():
                return {"kind": "dpkg", "name": entry[:-5].split(":")[0]}
    return None


def user_environ(ctx):
    """The variables the user set (those tbdoctor set for its probes put back as the user had them)."""
    env = dict(os.environ)
    for key, value in (ctx.get("user_env") or {}).items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return {k: v for k, v in env.items() if k.startswith(tuple(ctx.get("env_prefixes", ())))}


def probe(ctx):
    """The ``python`` facts."""
    cfg = read_pyvenv_cfg(sys.prefix)
    kind, evidence = environment_kind(cfg)
    return {
        "version": platform.python_version(),
        "version_info": list(sys.version_info[:3]),
        "implementation": platform.python_implementation(),
        "bits": 64 if sys.maxsize > 2 ** 32 else 32,
        "executable": sys.executable,
        "prefix": sys.prefix,
        "base_prefix": getattr(sys, "base_prefix", sys.prefix),
        "platform": sys.platform,
        "machine": platform.machine(),
        "env_kind": kind,
        "env_evidence": evidence,
        "pyvenv_cfg": cfg,
        "externally_managed": externally_managed(),
        "site_packages": sysconfig.get_path("purelib"),
        "user_site": user_site(),
        "sys_path": sys.path,
        "environ": user_environ(ctx),
        "broken_pth": broken_pth(),
        "pip": pip_facts(),
    }
