"""How fast tbdoctor is, next to the imports it cannot avoid and to its peers.

One command from a clean clone:

    python3 benchmarks/bench_check.py [--venv DIR] [--runs N]

builds (or reuses) a venv with torch + tensorboardX + TensorBoard + tensorflow-cpu and the
peer tools (env-doctor, cuda-doctor) under constraints.txt, with tbdoctor[browser] installed in it.
Then it runs every command below N times, interleaved (one round runs each once), after
one warm-up round, and prints medians, min-max and the ratios the speed targets are
stated in, wall time and CPU time (user + sys of the command and its children) side by
side. It also counts, for the same environment, how many checks and distinct facts
each tool's JSON output holds (a rough coverage count), prints the share of each phase
of `verify` with the server (and the browser, where one is installed), and times
`check --quick` in venvs it fills with 0 to 5,000 synthetic distributions (metadata only,
three requirements each) to show how the cost grows. It asserts nothing: timings vary
by machine.

    python3 benchmarks/bench_check.py --target /path/to/env/bin/python

measures an existing environment instead (read-only: tbdoctor runs from this checkout;
the peers that are not installed there are left out).
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import resource
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
    wanted = "\n".join([*PACKAGES, "tbdoctor[browser]"])  # Playwright: verify's browser phase
    if marker.exists() and marker.read_text() == wanted:
        return bindir
    print(f"building {path} (tensorflow-cpu takes a minute or two) ...", flush=True)
    venv.EnvBuilder(with_pip=True, symlinks=os.name != "nt", clear=True).create(path)
    subprocess.run([str(bindir / "python"), "-m", "pip", "install", "-q", "-c", str(REPO / "constraints.txt"),
                    *PACKAGES, "-e", f"{REPO}[browser]"], check=True, timeout=3600)
    marker.write_text(wanted)
    return bindir


def cpu_of_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)  # every waited-for descendant
    return usage.ru_utime + usage.ru_stime


def run(argv: list[str], env: dict, strict: bool = True) -> tuple[float, float, str]:
    """(wall s, CPU s of the command and its children, stdout). The commands run one at a
    time, so the change in RUSAGE_CHILDREN is this command's."""
    cpu, start = cpu_of_children(), time.perf_counter()
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, timeout=900,
                          cwd=tempfile.gettempdir(), text=True)  # not the checkout: its tbdoctor/ would shadow
    seconds = time.perf_counter() - start
    if proc.returncode not in (0, 1):  # 1 = problems found: still a complete run
        if strict:
            sys.exit(f"{' '.join(argv)} failed with exit status {proc.returncode}")
        return seconds, cpu_of_children() - cpu, ""
    return seconds, cpu_of_children() - cpu, proc.stdout


def synthetic_venv(path: Path, count: int) -> str:
    """A venv (no pip) holding ``count`` metadata-only distributions, three requirements each."""
    if not (path / "bin" / "python").exists() and not (path / "Scripts" / "python.exe").exists():
        venv.EnvBuilder(with_pip=False, symlinks=os.name != "nt").create(path)
    site = next(p for p in path.glob("**/site-packages") if p.is_dir())
    for i in range(count):
        name = f"synth_pkg_{i}"
        info = site / f"{name}-1.0.dist-info"
        info.mkdir(exist_ok=True)
        requires = "".join(f"Requires-Dist: synth-pkg-{(i * 7 + k) % count}>=0.1\n" for k in (1, 2, 3))
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: synth-pkg-{i}\nVersion: 1.0\n{requires}")
        (info / "INSTALLER").write_text("pip\n")
        (info / "RECORD").write_text(f"{name}.py,,\n{info.name}/METADATA,,\n{info.name}/RECORD,,\n")
        (site / f"{name}.py").write_text("")
    return str(next(p for p in (path / "bin" / "python", path / "Scripts" / "python.exe") if p.exists()))


def scaling(tbdoctor: list[str], env: dict, runs: int, sizes: tuple[int, ...]) -> None:
    """How `check --quick` grows with the number of installed distributions."""
    root = Path(tempfile.mkdtemp(prefix="tbdoctor-bench-scale-"))
    pythons = {n: synthetic_venv(root / f"venv-{n}", n) for n in sizes}
    times: dict[int, list[tuple[float, float]]] = {n: [] for n in sizes}
    for n in sizes:  # warm-up
        run([*tbdoctor, "check", "--quick", "--json", "--python", pythons[n]], env)
    for _ in range(runs):
        for n in sizes:
            times[n].append(run([*tbdoctor, "check", "--quick", "--json", "--python", pythons[n]], env)[:2])
    print("check --quick --no-cache / installed distributions (synthetic, metadata only, 3 requirements each):")
    print(f"  {'distributions':>13} {'wall':>8} {'CPU':>8} {'wall - empty, per 1,000':>24}")
    base = statistics.median(w for w, _ in times[sizes[0]])
    for n in sizes:
        wall, cpu = statistics.median(w for w, _ in times[n]), statistics.median(c for _, c in times[n])
        per = f"{(wall - base) / n * 1000:8.3f} s" if n else "-"
        print(f"  {n:>13,} {wall:7.2f}s {cpu:7.2f}s {per:>24}")


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
    parser.add_argument("--target", help="an existing environment's python to measure instead (read-only)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--sizes", default="0,100,1000,2000,5000", help="distribution counts of the scaling table")
    args = parser.parse_args()
    # Byte-compile tbdoctor as pip does when it installs the wheel: run from this checkout (or
    # installed editable) with PYTHONDONTWRITEBYTECODE set, every run would compile it again.
    compileall.compile_dir(str(REPO / "tbdoctor"), quiet=1)
    base = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "CONDA_PREFIX")}
    if args.target:
        bindir = Path(args.target).absolute().parent
        boot = f"import sys; sys.path.insert(0, {str(REPO)!r}); from tbdoctor.cli import main; sys.exit(main())"
        python, tbdoctor = args.target, [sys.executable, "-c", boot]  # this checkout's tbdoctor, run by this Python
    else:
        bindir = ensure_venv(args.venv.resolve())
        python, tbdoctor = str(bindir / "python"), [str(bindir / "tbdoctor")]
    cache = tempfile.mkdtemp(prefix="tbdoctor-bench-cache-")
    fresh = dict(base, TBDOCTOR_NO_CACHE="1")
    cached = dict(base, TBDOCTOR_CACHE_DIR=cache)
    commands = {
        "tbdoctor check --json": ([*tbdoctor, "check", "--json", "--python", python], fresh),
        "tbdoctor check --quick": ([*tbdoctor, "check", "--quick", "--python", python], fresh),
        "tbdoctor check (cache hit)": ([*tbdoctor, "check", "--python", python], cached),
        "tbdoctor --help": ([*tbdoctor, "--help"], fresh),
        "tbdoctor --version": ([*tbdoctor, "--version"], fresh),
        "tbdoctor verify --no-server": ([*tbdoctor, "verify", "--no-server", "--json", "--python", python], fresh),
        'python -c "import tensorflow"': ([python, "-c", "import tensorflow"], fresh),
        'python -c "import torch, tensorboardX"': ([python, "-c", "import torch, tensorboardX"], fresh),
        "python -m torch.utils.collect_env": ([python, "-m", "torch.utils.collect_env"], fresh),
        "env-doctor check --json": ([str(bindir / "env-doctor"), "check", "--json"], fresh),
        "cuda-doctor diagnose --format json": ([str(bindir / "cuda-doctor"), "diagnose", "--format", "json"], fresh),
    }
    commands = {name: c for name, c in commands.items() if not c[0][0].endswith("-doctor") or Path(c[0][0]).exists()}
    times: dict[str, list[float]] = {name: [] for name in commands}
    cpus: dict[str, list[float]] = {name: [] for name in commands}
    outputs: dict[str, str] = {}
    for name, (argv, env) in commands.items():  # warm-up round: page cache, .pyc files, the facts cache
        outputs[name] = run(argv, env)[2]
    train: list[float] = []
    for _ in range(args.runs):
        for name, (argv, env) in commands.items():
            seconds, cpu, out = run(argv, env)
            times[name].append(seconds)
            cpus[name].append(cpu)
            if name.startswith("tbdoctor verify"):
                train += [p["seconds"] for p in json.loads(out)["phases"] if p["name"] == "train"]
    med = {name: statistics.median(values) for name, values in times.items()}
    cpu = {name: statistics.median(values) for name, values in cpus.items()}

    print(f"{args.runs} runs each, interleaved; {os.cpu_count()} CPUs; environment {python}")
    # CPU / wall far below the imports' (which only compute) is time spent waiting: a peer on the network.
    print(f"  {'command':<40} {'wall median':>11} {'(min-max)':>13} {'CPU median':>10} {'CPU/wall':>8}")
    for name, value in med.items():
        print(f"  {name:<40} {value:10.2f}s ({min(times[name]):.2f}-{max(times[name]):.2f}) {cpu[name]:9.2f}s "
              f"{cpu[name] / value:8.2f}")
    for name in ("env-doctor check --json", "cuda-doctor diagnose --format json", "python -m torch.utils.collect_env"):
        if name in med and cpu[name] / med[name] < 0.5:
            print(f"  note: {name} waits {1 - cpu[name] / med[name]:.0%} of its wall time (network or a child "
                  "it waits on), not computing")
    check, tf = med["tbdoctor check --json"], med['python -c "import tensorflow"']
    imports_cpu = cpu['python -c "import tensorflow"'] + cpu['python -c "import torch, tensorboardX"']
    job = med['python -c "import torch, tensorboardX"'] + statistics.median(train)
    print("targets:")
    print(f"  check wall / import tensorflow wall           = {check / tf:5.2f}   (target <= 1.15)")
    print(f"  check CPU / (CPU of import tensorflow + import torch, tensorboardX) "
          f"= {cpu['tbdoctor check --json'] / imports_cpu:5.2f}   (target <= 1.3)")
    print(f"  check --quick                                 = {med['tbdoctor check --quick']:5.2f} s (target <= 0.3 s)")
    print(f"  check, cache hit                              = {med['tbdoctor check (cache hit)']:5.2f} s (target <= 0.2 s)")
    print(f"  --help / --version                            = {med['tbdoctor --help']:.2f} / "
          f"{med['tbdoctor --version']:.2f} s (target < 0.25 s)")
    print(f"  verify --no-server / (import torch, tensorboardX + train {statistics.median(train):.2f} s) "
          f"= {med['tbdoctor verify --no-server'] / job:5.2f}   (target <= 1.5)")
    print("tbdoctor check --json / peer (wall):")
    for peer in ("python -m torch.utils.collect_env", "env-doctor check --json", "cuda-doctor diagnose --format json"):
        if peer in med:
            print(f"  / {peer:<40} = {check / med[peer]:5.2f}")
    print("coverage (same environment, JSON output):")
    for name in ("tbdoctor check --json", "env-doctor check --json", "cuda-doctor diagnose --format json",
                 "python -m torch.utils.collect_env"):
        if name in outputs:
            print(coverage(name, outputs[name]))
    phases([*tbdoctor, "verify", "--json", "--python", python], fresh)
    scaling(tbdoctor, fresh, args.runs, tuple(int(n) for n in args.sizes.split(",")))
    return 0


def phases(argv: list[str], env: dict) -> None:
    """Each phase's share of one `verify` with the TensorBoard server (and browser, if any)."""
    seconds, _, out = run(argv, env, strict=False)
    try:
        report = json.loads(out)
    except ValueError:
        print(f"verify (with the server): no JSON report ({seconds:.2f} s)")
        return
    print(f"verify (with the server): {seconds:.2f} s wall; each phase's share:")
    for p in report.get("phases", []):
        print(f"  {p['name']:<16} {p.get('status', ''):<8} {p['seconds']:6.2f} s  {p['seconds'] / seconds:6.1%}")


if __name__ == "__main__":
    sys.exit(main())
