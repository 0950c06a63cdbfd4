"""How fast tbdoctor is, next to the imports it cannot avoid and to its peers.

One command from a clean clone:

    python3 benchmarks/bench_check.py [--venv DIR] [--runs N]

builds (or reuses) a venv with torch + tensorboardX + TensorBoard + tensorflow-cpu and the
peer tools (env-doctor, cuda-doctor) under constraints.txt, with tbdoctor installed in it.
Then it runs every command below N times, interleaved (one round runs each once), after
one warm-up round, and prints medians, min-max and the ratios the speed targets are
stated in. It also counts, for the same environment, how many checks and distinct facts
each tool's JSON output holds (a rough coverage count). It asserts nothing: timings
vary by machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("torch==2.13.0", "tensorboardX", "tensorboard", "tensorflow-cpu", "env-doctor", "cuda-doctor")


def ensure_venv(path: Path) -> Path:
    bindir = path / ("Scripts" if os.name == "nt" else "bin")
    marker = path / ".bench-complete"
    if marker.exists() and marker.read_text() == "\n".join(PACKAGES):
        return bindir
    print(f"building {path} (tensorflow-cpu takes a minute or two) ...", flush=True)
    venv.EnvBuilder(with_pip=True, symlinks=os.name != "nt", clear=True).create(path)
    subprocess.run([str(bindir / "python"), "-m", "pip", "install", "-q", "-c", str(REPO / "constraints.txt"),
                    *PACKAGES, "-e", str(REPO)], check=True, timeout=3600)
    marker.write_text("\n".join(PACKAGES))
    return bindir


def run(argv: list[str], env: dict) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, timeout=900,
                          cwd=tempfile.gettempdir(), text=True)  # not the checkout: its tbdoctor/ would shadow
    seconds = time.perf_counter() - start
    if proc.returncode not in (0, 1):  # 1 = problems found: still a complete run
        sys.exit(f"{' '.join(argv)} failed with exit status {proc.returncode}")
    return seconds, proc.stdout


def leaves(value) -> set[str]:
    """Distinct non-empty scalar facts in a JSON value, as path=value strings (list indices dropped)."""
    found: set[str] = set()

    def walk(v, path):
        if isinstance(v, dict):
            for k, item in v.items():
                walk(item, f"{path}.{k}")
        elif isinstance(v, list):
            for item in v:
                walk(item, path)
        elif v not in (None, "", [], {}):
            found.add(f"{path}={v}")
    walk(value, "")
    return found


def coverage(name: str, stdout: str) -> str:
    try:
        data = json.loads(stdout[stdout.index("{"):])
    except ValueError:  # a text report such as collect_env's: count its "Key: value" lines
        facts = {line.strip() for line in stdout.splitlines() if ": " in line and line.split(": ", 1)[1].strip()}
        return f"  {name:<34}    - checks  {len(facts):>5} distinct facts (text lines)"
    checks = data.get("checks") or data.get("issues") or data.get("findings") or []
    return f"  {name:<34} {len(checks) if isinstance(checks, list) else '?':>4} checks  {len(leaves(data)):>5} distinct facts"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--venv", type=Path, default=REPO / ".bench" / "venv")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    bindir = ensure_venv(args.venv.resolve())
    python, tbdoctor = str(bindir / "python"), str(bindir / "tbdoctor")
    cache = tempfile.mkdtemp(prefix="tbdoctor-bench-cache-")
    base = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "CONDA_PREFIX")}
    fresh = dict(base, TBDOCTOR_NO_CACHE="1")
    cached = dict(base, TBDOCTOR_CACHE_DIR=cache)
    commands = {
        "tbdoctor check --json": ([tbdoctor, "check", "--json", "--python", python], fresh),
        "tbdoctor check --quick": ([tbdoctor, "check", "--quick", "--python", python], fresh),
        "tbdoctor check (cache hit)": ([tbdoctor, "check", "--python", python], cached),
        "tbdoctor --help": ([tbdoctor, "--help"], fresh),
        "tbdoctor --version": ([tbdoctor, "--version"], fresh),
        "tbdoctor verify --no-server": ([tbdoctor, "verify", "--no-server", "--json", "--python", python], fresh),
        'python -c "import tensorflow"': ([python, "-c", "import tensorflow"], fresh),
        'python -c "import torch, tensorboardX"': ([python, "-c", "import torch, tensorboardX"], fresh),
        "python -m torch.utils.collect_env": ([python, "-m", "torch.utils.collect_env"], fresh),
        "env-doctor check --json": ([str(bindir / "env-doctor"), "check", "--json"], fresh),
        "cuda-doctor diagnose --format json": ([str(bindir / "cuda-doctor"), "diagnose", "--format", "json"], fresh),
    }
    times: dict[str, list[float]] = {name: [] for name in commands}
    outputs: dict[str, str] = {}
    for name, (argv, env) in commands.items():  # warm-up round: page cache, .pyc files, the facts cache
        outputs[name] = run(argv, env)[1]
    train: list[float] = []
    for _ in range(args.runs):
        for name, (argv, env) in commands.items():
            seconds, out = run(argv, env)
            times[name].append(seconds)
            if name.startswith("tbdoctor verify"):
                train += [p["seconds"] for p in json.loads(out)["phases"] if p["name"] == "train"]
    med = {name: statistics.median(values) for name, values in times.items()}

    print(f"{args.runs} runs each, interleaved; {os.cpu_count()} CPUs; venv {args.venv}")
    for name, value in med.items():
        print(f"  {name:<40} median {value:6.2f} s   (min {min(times[name]):.2f}, max {max(times[name]):.2f})")
    check, tf = med["tbdoctor check --json"], med['python -c "import tensorflow"']
    job = med['python -c "import torch, tensorboardX"'] + statistics.median(train)
    print("targets:")
    print(f"  check / slowest import (import tensorflow)    = {check / tf:5.2f}   (target <= 1.15)")
    print(f"  check --quick                                 = {med['tbdoctor check --quick']:5.2f} s (target < 0.3 s)")
    print(f"  check, cache hit                              = {med['tbdoctor check (cache hit)']:5.2f} s (target < 0.3 s)")
    print(f"  --help / --version                            = {med['tbdoctor --help']:.2f} / "
          f"{med['tbdoctor --version']:.2f} s (target < 0.25 s)")
    print(f"  verify --no-server / (import torch, tensorboardX + train {statistics.median(train):.2f} s) "
          f"= {med['tbdoctor verify --no-server'] / job:5.2f}   (target <= 1.5)")
    print("tbdoctor check --json / peer:")
    for peer in ("python -m torch.utils.collect_env", "env-doctor check --json", "cuda-doctor diagnose --format json"):
        print(f"  / {peer:<40} = {check / med[peer]:5.2f}")
    print("coverage (same environment, JSON output):")
    for name in ("tbdoctor check --json", "env-doctor check --json", "cuda-doctor diagnose --format json",
                 "python -m torch.utils.collect_env"):
        print(coverage(name, outputs[name]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
