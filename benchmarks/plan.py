"""How long `snakemake -n` takes to plan the paper's full configuration (81 pretraining jobs and
everything downstream up to the best-architecture checkpoint), in a fresh results folder.

    python benchmarks/plan.py [--repeats 3] [--configfile extra.yaml]

Prints the planned job count per rule once and the median wall time over the repeats (each a
new process, as a user would run it). Target: under 10 s.
"""
from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--configfile", nargs="*", default=[])
    args = parser.parse_args(argv)
    exe = shutil.which("snakemake")
    if exe is None:
        sys.exit("snakemake is not installed")
    times, out = [], ""
    with tempfile.TemporaryDirectory() as results:
        for _ in range(args.repeats):
            cmd = [exe, "-n", "--cores", "1", "--config", f"results={results}"]
            if args.configfile:
                cmd += ["--configfile", "config.yaml", *args.configfile]
            t0 = time.perf_counter()
            run = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=False)
            times.append(time.perf_counter() - t0)
            if run.returncode:
                sys.exit(run.stdout[-2000:] + run.stderr[-2000:])
            out = run.stdout + run.stderr
    stats = out[out.find("Job stats:"):].split("\n\n")[0]
    print(stats)
    total = re.search(r"^total\s+(\d+)", stats, re.M)
    print(f"\nsnakemake -n, paper config: {total.group(1) if total else '?'} jobs planned; "
          f"median {statistics.median(times):.2f} s over {len(times)} runs "
          f"({', '.join(f'{t:.2f}' for t in times)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
