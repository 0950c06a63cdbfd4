"""How fast `tbdoctor fleet` merges many reports.

Makes one real `tbdoctor check --json` report of an environment (default: this
interpreter), pads its package list to a realistic size, writes N varied copies
(driver, GPU count, torch version drift, like tests/test_fleet.py) and times, in
one run and alternately: `tbdoctor fleet DIR --json`, `tbdoctor fleet DIR`
(the plain table) and a baseline that only json-parses every file in one
process. Prints medians, reports per second and the ratios to the baseline.

    python benchmarks/fleet_bench.py [--python PATH] [--reports 1000 5000] [--dists 200] [--runs 3]
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BOOT = f"import sys; sys.path.insert(0, {str(REPO)!r}); from tbdoctor.cli import main; sys.exit(main())"
BASELINE = "import json, pathlib, sys; [json.loads(p.read_bytes()) for p in pathlib.Path(sys.argv[1]).rglob('*.json')]"


def template(python: str, dists: int) -> dict:
    proc = subprocess.run([sys.executable, "-c", BOOT, "check", "--json", "--python", python],
                          capture_output=True, text=True, timeout=600)
    report = json.loads(proc.stdout)
    have = report["facts"]["packages"]["distributions"]
    for i in range(len(have), dists):  # a training environment has a few hundred distributions
        d = copy.deepcopy(have[i % len(have)])
        d["name"] = d["canonical"] = f"{d['name']}-pad{i}"
        have.append(d)
    return report


def write(root: Path, report: dict, n: int) -> int:
    size = 0
    for i in range(n):
        r = copy.deepcopy(report)
        gpus = 7 if i % 40 == 7 else 8
        r["facts"]["gpu"] = {"driver_version": "535.104.05" if i % 25 == 3 else "550.54.15", "cuda_version": "12.4",
                             "gpus": [{"index": k, "name": "NVIDIA H100 80GB HBM3",
                                       "uuid": f"GPU-{i:08x}-0000-4000-8000-{k:012x}"} for k in range(gpus)]}
        r["facts"]["torch"] = {"cuda": "12.4", "cuda_available": True}
        text = json.dumps(r)
        size += len(text)
        (root / f"node{i:05d}.json").write_text(text)
    return size


def timed(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=600)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--python", default=sys.executable)
    ap.add_argument("--reports", type=int, nargs="+", default=[1000, 5000])
    ap.add_argument("--dists", type=int, default=200)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    report = template(args.python, args.dists)
    print(f"template: {len(report['facts']['packages']['distributions'])} distributions")
    print(f"{'reports':>8} {'MB':>7} {'baseline s':>11} {'fleet --json s':>15} {'fleet table s':>14} "
          f"{'reports/s':>10} {'json/base':>10} {'table/base':>11}")
    for n in args.reports:
        with tempfile.TemporaryDirectory(prefix="tbdoctor-fleet-bench-") as tmp:
            size = write(Path(tmp), report, n)
            runs = {"base": [], "json": [], "table": []}
            for _ in range(args.runs):  # alternate, so that caches and load treat each alike
                runs["base"].append(timed([sys.executable, "-c", BASELINE, tmp]))
                runs["json"].append(timed([sys.executable, "-c", BOOT, "fleet", tmp, "--json"]))
                runs["table"].append(timed([sys.executable, "-c", BOOT, "fleet", tmp]))
            med = {k: statistics.median(v) for k, v in runs.items()}
            print(f"{n:>8} {size / 1e6:>7.1f} {med['base']:>11.2f} {med['json']:>15.2f} {med['table']:>14.2f} "
                  f"{n / med['json']:>10.0f} {med['json'] / med['base']:>10.2f} {med['table'] / med['base']:>11.2f}")


if __name__ == "__main__":
    main()
