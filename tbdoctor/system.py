"""Host probe ``system``: the machine around the target interpreter.

Operating system, libc, CPU, memory and the compilers a source build would use
(what ``python -m torch.utils.collect_env`` reports), plus the user, home
directory and host name, recorded so that every output can redact them
(``facts.Redactor``). Runs in tbdoctor's own process; the compilers are asked
for their version through ``procs`` with the probe's timeout. Unknown is None.
"""

from __future__ import annotations

import getpass
import os
import platform
import shutil
import socket
from pathlib import Path

_COMPILERS = {"gcc": ["gcc", "--version"], "clang": ["clang", "--version"], "cmake": ["cmake", "--version"]}


def probe(ctx) -> dict:
    return {
        "os": platform.platform(),
        "system": platform.system(),
        "release": platform.release(),
        "machine": platform.machine(),
        "libc": " ".join(part for part in platform.libc_ver() if part) or None,
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "memory_mib": _memory_mib(),
        "compilers": {name: _first_line(ctx, argv) for name, argv in _COMPILERS.items()},
        "hostname": _safe(socket.gethostname),
        "user": _safe(getpass.getuser),
        "home": _safe(lambda: str(Path.home())),
        "network": _network(),
    }


def _network() -> dict:
    """What multi-node torch.distributed depends on: the address the host name
    resolves to, the interfaces, and the launcher's variables that are set."""
    from tbdoctor.verify import multinode
    _hostname, address = multinode.resolve_self()
    return {"hostname_address": address, "interfaces": sorted(multinode.interfaces()),
            "env": {k: os.environ[k] for k in multinode.ENV_VARS if os.environ.get(k)}}


def _safe(getter):
    try:
        return getter() or None
    except Exception:  # a container user without a passwd entry, no HOME, ...
        return None


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Model", "cpu model"):
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or None


def _memory_mib() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // (1024 * 1024)
    except (AttributeError, ValueError, OSError):  # Windows, or a platform without these names
        return None


def _first_line(ctx, argv: list[str]) -> str | None:
    exe = shutil.which(argv[0])
    if exe is None:
        return None
    result = ctx.run([exe, *argv[1:]], timeout=10)
    lines = result.stdout.strip().splitlines() if result.ok else []
    return lines[0].strip() if lines else None
