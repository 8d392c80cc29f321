"""Records/s of ecgfm's standardization vs a naive per-record pipeline, on real PTB-XL 500 Hz records.

    python benchmarks/standardize.py [--ptbxl DIR] [--repeats 3] [--threads N]

DIR is a PhysioNet-layout PTB-XL with records500 (default: the 500 records at 500 Hz unpacked from
../shared/data/ptbxl into a temporary folder, with ptbxl_database.csv restricted to them: on
PhysioNet every metadata row has its 500 Hz record, so the other 21,337 rows of that copy would
only add quarantine bookkeeping that a real run does not have). Naive = wfdb.rdsamp + scipy.signal.resample (FFT) + one .npy per record,
one process. ecgfm = the standardization stage as the workflow runs it (reader, QC, polyphase
resampling, float16 shards + manifest), with 1 and with N worker processes. Medians of
--repeats runs, all in this one process, so the ratio compares like with like.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def naive(records: list[Path], out: Path) -> float:
    import scipy.signal
    import wfdb
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    for rec in records:
        signal, _ = wfdb.rdsamp(str(rec))
        y = scipy.signal.resample(signal, 2500, axis=0)
        np.save(out / f"{rec.name}.npy", y.T.astype(np.float32))
    return len(records) / (time.perf_counter() - start)


def ours(root: Path, out: Path, threads: int) -> tuple[float, int]:
    from ecgfm.corpus import standardize_source
    from ecgfm.readers import make_reader
    from ecgfm.standardize import Settings
    reader = make_reader("ptbxl", root, "ptbxl", {"rate": 500})
    start = time.perf_counter()
    summary = standardize_source(reader, out, "ptbxl", Settings(expected_fs=500, keep_flagged=True),
                                 shard_size=8192, threads=threads, progress=False)
    return summary["kept"] / (time.perf_counter() - start), summary["kept"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ptbxl", type=Path)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="ecgfm-bench-"))
    root = args.ptbxl
    if root is None:
        root = tmp / "ptbxl"
        subprocess.run([sys.executable, str(REPO.parent / "shared/data/ptbxl/unpack.py"), str(root),
                        "--rate", "500"], check=True, capture_output=True)
        import pandas as pd
        db = pd.read_csv(root / "ptbxl_database.csv")
        present = [(root / f"{f}.hea").exists() for f in db["filename_hr"]]
        db[present].to_csv(root / "ptbxl_database.csv", index=False)
    records = sorted(p.with_suffix("") for p in (root / "records500").rglob("*.hea"))
    print(f"{len(records)} PTB-XL records at 500 Hz under {root}; {os.cpu_count()} CPUs")
    res = {"naive (1 process)": [], "ecgfm (1 process)": [], f"ecgfm ({args.threads} processes)": []}
    for k in range(args.repeats):
        res["naive (1 process)"].append(naive(records, tmp / f"naive{k}"))
        res["ecgfm (1 process)"].append(ours(root, tmp / f"ours1_{k}", 1)[0])
        res[f"ecgfm ({args.threads} processes)"].append(ours(root, tmp / f"oursN_{k}", args.threads)[0])
    base = statistics.median(res["naive (1 process)"])
    print(f"{'pipeline':<24} {'records/s (median)':>19} {'runs':>28} {'x naive':>8}")
    for name, values in res.items():
        med = statistics.median(values)
        print(f"{name:<24} {med:>19.1f} {' '.join(f'{v:.1f}' for v in values):>28} {med / base:>8.2f}")


if __name__ == "__main__":
    main()
