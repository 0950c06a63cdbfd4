"""How long `tbdoctor check --json` takes next to what it replaces.

One command from a clean clone:

    python3 benchmarks/bench_check.py [--venv DIR] [--runs N]

builds (or reuses) a venv with torch + tensorboardX + TensorBoard + tensorflow-cpu
under constraints.txt, with tbdoctor installed in it, then runs, interleaved, N
times each after one warm-up: `tbdoctor check --json`, the slowest single framework
import (`python -c "import tensorflow"`) and `python -m torch.utils.collect_env`.
It prints the medians and their ratios; it asserts nothing (timings vary by machine).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("torch==2.13.0", "tensorboardX", "tensorboard", "tensorflow-cpu")


def python_of(path: Path) -> Path:
    return path / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def ensure_venv(path: Path) -> Path:
    python = python_of(path)
    marker = path / ".bench-complete"
    if marker.exists():
        return python
    print(f"building {path} (tensorflow-cpu takes a minute or two) ...", flush=True)
    venv.EnvBuilder(with_pip=True, symlinks=os.name != "nt").create(path)
    subprocess.run([str(python), "-m", "pip", "install", "-q", "-c", str(REPO / "constraints.txt"),
                    *PACKAGES, "-e", str(REPO)], check=True, timeout=3600)
    marker.write_text("\n".join(PACKAGES))
    return python


def timed(argv: list[str], env: dict) -> float:
    start = time.perf_counter()
    proc = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, timeout=600,
                          cwd=tempfile.gettempdir())  # not the checkout: its tbdoctor/ folder would shadow
    seconds = time.perf_counter() - start
    if proc.returncode not in (0, 1):  # check exits 1 when it finds problems; that is still a full run
        sys.exit(f"{' '.join(argv)} failed with exit status {proc.returncode}")
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--venv", type=Path, default=REPO / ".bench" / "venv")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    python = str(ensure_venv(args.venv.resolve()))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "CONDA_PREFIX")}
    env["TBDOCTOR_NO_CACHE"] = "1"  # measure probing, not a facts cache hit
    commands = {
        "tbdoctor check --json": [python, "-m", "tbdoctor", "check", "--json", "--python", python],
        'python -c "import tensorflow"': [python, "-c", "import tensorflow"],
        "python -m torch.utils.collect_env": [python, "-m", "torch.utils.collect_env"],
    }
    times: dict[str, list[float]] = {name: [] for name in commands}
    for name, argv in commands.items():  # warm-up: page cache, .pyc files
        timed(argv, env)
    for _ in range(args.runs):
        for name, argv in commands.items():
            times[name].append(timed(argv, env))
    medians = {name: statistics.median(values) for name, values in times.items()}
    print(f"{args.runs} runs each, {os.cpu_count()} CPUs, venv {args.venv}")
    for name, value in medians.items():
        print(f"  {name:<36} median {value:6.2f} s   (min {min(times[name]):.2f}, max {max(times[name]):.2f})")
    check, *others = medians.values()
    for name, value in zip(list(medians)[1:], others):
        print(f"  ratio check / {name:<34} = {check / value:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
