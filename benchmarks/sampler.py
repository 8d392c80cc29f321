"""Seconds to plan one pretraining epoch (PatientPairSampler) at the paper's corpus size.

    python benchmarks/sampler.py [--records 1290000] [--patients 260000] [--batch 256] [--repeats 3]

Random patient ids (about 5 ECGs per patient), shards of 8,192 records, blocks of 4 shards as
config.yaml sets them. The plan is built in the training process at each epoch boundary, where the
GPU waits for it. Prints the median over --repeats epochs.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ecgfm.pretrain_data import PatientPairSampler  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=1_290_000)
    ap.add_argument("--patients", type=int, default=260_000)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    patient = np.unique(rng.integers(0, args.patients, args.records), return_inverse=True)[1]
    shard = np.arange(args.records) // 8192
    sampler = PatientPairSampler(patient, shard, args.batch, seed=0, block_shards=4)
    times, batches = [], 0
    for epoch in range(args.repeats):
        start = time.perf_counter()
        batches = len(sampler._epoch_batches(epoch))
        times.append(time.perf_counter() - start)
    print(f"{args.records:,} records of {patient.max() + 1:,} patients, batch {args.batch}: {batches:,} batches "
          f"per epoch, planned in {statistics.median(times):.2f} s (median of {args.repeats})")


if __name__ == "__main__":
    main()
