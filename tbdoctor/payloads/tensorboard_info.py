# TensorBoard: the package, its CLI start-up imports, the `tensorboard` script,
# the data server, notebook instance records, localhost and port 6006. Run by
# torch_tensorboard.py in the process that imports torch (they share numpy and protobuf).
# Stdlib only, 3.8+.
import errno
import glob
import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sysconfig
import tempfile

from ._common import (
    begin, dist_integrity, dist_version, failure,
    first_line, guarded_import, headers, step, tensorboard_without_tensorflow,
)

_DISTS = ("tensorboard", "tb-nightly", "tensorflow-tensorboard", "tensorboard-nightly")
_PORT = 6006


def package(out):
    begin("tensorboard", out)
    tb, err = guarded_import("tensorboard", "import_error")
    if tb is None:
        out["import_error"] = err
        out["integrity"] = dist_integrity(*_DISTS)
        return
    out["import_ok"] = True
    version = getattr(tb, "__version__", None)
    if version is None:  # tensorboard/__init__ reads it lazily from tensorboard.version
        ver, _ = guarded_import("tensorboard.version")
        version = getattr(ver, "VERSION", None)
    out["module_version"] = version
    _, err = guarded_import("tensorboard.compat.proto.event_pb2", "protos_error", out)
    out["protos_error"] = err
    _, err = guarded_import("tensorboard.main", "cli_error", out)  # what the `tensorboard` command imports first
    out["cli_error"] = err


def pkg_resources_ok():
    mod, err = guarded_import("pkg_resources")
    return mod is not None, err


def script(out):
    scripts = sysconfig.get_path("scripts")
    exe = "tensorboard.exe" if os.name == "nt" else "tensorboard"
    own = os.path.join(scripts, exe)
    found = shutil.which("tensorboard")
    shebang = None
    if found and os.name != "nt":
        try:
            with open(found, "rb") as fh:
                first = fh.readline(400).decode("utf-8", "replace").strip()
            shebang = first[2:].strip() if first.startswith("#!") else None
        except OSError:
            shebang = None
    same = bool(found) and os.path.normcase(os.path.realpath(found)) == os.path.normcase(os.path.realpath(own))
    out["script"] = {"on_path": found, "own": own if os.path.exists(own) else None, "same": same,
                     "shebang": shebang, "scripts_dir": scripts}


def data_server(out, timeout):
    mod, err = guarded_import("tensorboard_data_server")
    if mod is None:
        out["data_server"] = {"installed": False, "error": err}
        return
    info = {"installed": True, "binary": None, "ok": False, "output": None, "error": None}
    try:
        info["binary"] = mod.server_binary()
    except Exception as exc:
        info["error"] = failure(exc)
    if info["binary"]:
        try:
            proc = subprocess.run([info["binary"], "--version"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  timeout=timeout, universal_newlines=True)
            info["ok"] = proc.returncode == 0
            info["output"] = proc.stdout.strip()[:300]
            if not info["ok"]:
                info["error"] = {"reason": "other", "line": "exit status %d: %s" % (proc.returncode, info["output"]),
                                 "traceback": ""}
        except Exception as exc:
            info["error"] = failure(exc)
    out["data_server"] = info


def pid_alive(pid):
    if os.name == "nt":
        return None  # unknown without extra packages
    try:
        os.kill(pid, 0)
    except OSError as exc:
        return exc.errno == errno.EPERM
    return True


def instances(out):
    folder = os.path.join(tempfile.gettempdir(), ".tensorboard-info")
    info = {"dir": folder, "exists": os.path.isdir(folder), "writable": None, "entries": []}
    if info["exists"]:
        info["writable"] = os.access(folder, os.W_OK | os.X_OK)
        for path in sorted(glob.glob(os.path.join(folder, "pid-*.info"))):
            entry = {"file": path, "pid": None, "port": None, "logdir": None, "alive": None}
            try:
                with open(path, encoding="utf-8") as fh:
                    data = json.load(fh)
                entry.update(pid=data.get("pid"), port=data.get("port"), logdir=data.get("logdir"))
                if isinstance(entry["pid"], int):
                    entry["alive"] = pid_alive(entry["pid"])
            except (OSError, ValueError) as exc:
                entry["error"] = first_line(exc)
            info["entries"].append(entry)
    else:
        info["writable"] = os.access(tempfile.gettempdir(), os.W_OK | os.X_OK)
    out["instances"] = info


def network(out):
    try:
        addrs = sorted({a[4][0] for a in socket.getaddrinfo("localhost", None)})
        out["localhost"] = {"addresses": addrs,
                            "loopback": all(a.startswith("127.") or a in ("::1", "0:0:0:0:0:0:0:1") for a in addrs)}
    except OSError as exc:
        out["localhost"] = {"addresses": [], "loopback": False, "error": first_line(exc)}
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        if os.name != "nt":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as TensorBoard's server does
        sock.bind(("127.0.0.1", _PORT))
        out["port"] = {"port": _PORT, "free": True}
    except OSError as exc:
        out["port"] = {"port": _PORT, "free": False, "error": first_line(exc)}
    finally:
        sock.close()


def plugins(out):
    """Load every `tensorboard_plugins` entry point as tensorboard.default does at start-up:
    one that fails to load stops the `tensorboard` command. Each is named with its package."""
    import contextlib
    import io
    from importlib import metadata
    found = []
    for dist in metadata.distributions():
        try:
            points = [ep for ep in dist.entry_points if ep.group == "tensorboard_plugins"]
        except Exception:
            continue
        meta = headers(dist) if points else None
        for ep in points:
            entry = {"name": ep.name, "value": ep.value, "dist": meta["Name"], "version": meta["Version"], "error": None}
            step("load TensorBoard plugin %s (%s)" % (ep.name, ep.value))
            buf = io.StringIO()
            try:
                with contextlib.redirect_stderr(buf):
                    ep.load()
            except BaseException as exc:  # SystemExit from a broken plugin too
                if isinstance(exc, KeyboardInterrupt):
                    raise
                entry["error"] = failure(exc, captured=buf.getvalue())
            found.append(entry)
    out["plugins"] = found


_JS_TYPES = ("application/javascript", "text/javascript", "application/x-javascript")


def container():
    """The first marker of a container this process runs in, else None."""
    for name in ("container", "KUBERNETES_SERVICE_HOST"):  # podman/systemd-nspawn; every Kubernetes pod
        if os.environ.get(name):
            return "$" + name
    for path in ("/.dockerenv", "/run/.containerenv"):
        if os.path.exists(path):
            return path
    try:
        with open("/proc/1/cgroup", encoding="utf-8", errors="replace") as fh:
            text = fh.read()
        for word in ("docker", "kubepods", "containerd", "lxc", "libpod"):
            if word in text:
                return "/proc/1/cgroup (%s)" % word
    except OSError:
        pass
    return None


def js_type():
    """What `mimetypes` (TensorBoard's core plugin serves its assets with it) says .js is,
    and the system file that maps it, when one does."""
    import mimetypes
    kind = mimetypes.guess_type("index.js")[0]
    source = None
    if kind not in _JS_TYPES:
        for path in mimetypes.knownfiles:
            try:
                with open(path, encoding="utf-8", errors="replace") as fh:
                    if any("js" in line.split()[1:] and line.split()[0] == kind for line in fh if line.split()):
                        source = path
            except OSError:
                continue
    return {"type": kind, "ok": kind in _JS_TYPES, "source": source}


def port_owner(port):
    """(pid, command line) of the process listening on ``port`` (Linux /proc; own user's only)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as fh:
                for line in fh.readlines()[1:]:
                    parts = line.split()
                    if int(parts[1].rsplit(":", 1)[1], 16) == port and parts[3] == "0A":
                        inodes.add("socket:[%s]" % parts[9])
        except (OSError, ValueError, IndexError):
            continue
    if not inodes:
        return None
    for pid in sorted((p for p in os.listdir("/proc") if p.isdigit()), key=int):
        try:
            fds = os.listdir("/proc/%s/fd" % pid)
            if any(os.readlink("/proc/%s/fd/%s" % (pid, fd)) in inodes for fd in fds):
                with open("/proc/%s/cmdline" % pid, "rb") as fh:
                    command = " ".join(fh.read().replace(b"\0", b" ").decode("utf-8", "replace").split())
                return {"pid": int(pid), "command": command[:300]}
        except OSError:
            continue
    return None


def bind_all():
    """Whether `tensorboard --bind_all` can bind here: the wildcard address chosen as
    TensorBoard's program.py does (getaddrinfo with AI_PASSIVE, IPv6 first; copied, not
    imported), bound on a free port."""
    address = "::" if socket.has_ipv6 else "0.0.0.0"
    try:
        infos = socket.getaddrinfo(None, 0, socket.AF_UNSPEC, socket.SOCK_STREAM, socket.IPPROTO_TCP,
                                   socket.AI_PASSIVE)
        by_family = {}
        for family, _, _, _, sockaddr in infos:
            by_family.setdefault(family, []).append(sockaddr[0])
        address = (by_family.get(getattr(socket, "AF_INET6", None)) or by_family.get(socket.AF_INET) or [address])[0]
    except (socket.gaierror, OSError):
        pass
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    try:
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.bind((address, 0))
        finally:
            sock.close()
    except OSError as exc:
        return {"address": address, "ok": False, "error": first_line(exc)}
    return {"address": address, "ok": True, "error": None}


def reach(out):
    """How a browser would reach a TensorBoard started here."""
    out["reach"] = {  # addresses are not kept: reports name the host by its (redacted) host name
        "ssh": bool(os.environ.get("SSH_CONNECTION") or os.environ.get("SSH_CLIENT")),
        "container": container(),
        "jupyterhub": os.environ.get("JUPYTERHUB_SERVICE_PREFIX") or os.environ.get("JUPYTERHUB_API_URL"),
        "proxy_url": os.environ.get("TENSORBOARD_PROXY_URL"),
        "server_proxy": importlib.util.find_spec("jupyter_server_proxy") is not None,
        "js": js_type(),
        "bind_all": bind_all(),
    }
    if not (out.get("port") or {}).get("free", True) and os.path.isdir("/proc/net"):
        out["port"]["owner"] = port_owner(_PORT)


def pillow(out):
    """Pillow, which the image summaries of torch.utils.tensorboard and tensorboardX import
    when they run (add_image, add_figure, add_embedding's label_img)."""
    name, version = dist_version("pillow", "Pillow")
    info = {"installed": name is not None, "version": version, "error": None}
    if name is not None:
        _, info["error"] = guarded_import("PIL.Image")
    out["pillow"] = info


def probe(ctx):
    name, version = dist_version(*_DISTS)
    out = {"installed": name is not None, "distribution": name, "version": version, "import_ok": False,
           "import_error": None, "tensorflow_stubbed": tensorboard_without_tensorflow()}
    ok, err = pkg_resources_ok()
    out["pkg_resources_ok"], out["pkg_resources_error"] = ok, err
    instances(out)
    network(out)
    reach(out)
    if name is None:
        return out
    package(out)
    if out.get("import_ok"):
        plugins(out)
    pillow(out)
    script(out)
    data_server(out, max(5.0, min(20.0, float(ctx.get("timeout") or 20) / 3)))
    return out
