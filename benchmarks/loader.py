"""Samples/s of random batches read from standardized shards (what a training loader does).

    python benchmarks/loader.py --shards results/standardized/ptbxl [--batch 256] [--batches 200]

Reads --batches random batches of --batch records through ecgfm.shards.ShardReader, after one
warm-up pass over the shards (the page cache is warm, as in a long training run). Prints the
median samples/s over 5 rounds. Without --shards, it standardizes the demo PTB-XL corpus first.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ecgfm.shards import ShardReader  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shards", type=Path)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--batches", type=int, default=100)
    args = ap.parse_args()
    if args.shards is None:
        from ecgfm.corpus import standardize_source
        from ecgfm.demo import write_demo_source
        from ecgfm.readers import make_reader
        from ecgfm.standardize import Settings
        tmp = Path(tempfile.mkdtemp(prefix="ecgfm-loader-"))
        write_demo_source("ptbxl", tmp / "raw", n_patients=1000, seed=0)
        standardize_source(make_reader("ptbxl", tmp / "raw", "ptbxl"), tmp / "std", "ptbxl",
                           Settings(expected_fs=500), shard_size=1024, threads=2, progress=False)
        args.shards = tmp / "std"
    reader = ShardReader(args.shards)
    n = len(reader)
    for start in range(0, n, 4096):                       # warm the page cache
        reader.read(np.arange(start, min(n, start + 4096)))
    rng = np.random.default_rng(0)
    rates = []
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(args.batches):
            batch = reader.read(rng.integers(0, n, size=args.batch))
        rates.append(args.batches * args.batch / (time.perf_counter() - t))
    print(f"{n} records in {reader.manifest.shard.nunique()} shards; batch {args.batch}; "
          f"dtype on disk {reader.shard(0).dtype} -> {batch.dtype}")
    print(f"random-batch read: {statistics.median(rates):,.0f} samples/s (median of 5; "
          f"runs {', '.join(f'{r:,.0f}' for r in rates)})")


if __name__ == "__main__":
    main()
