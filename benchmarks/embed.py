"""Records/s of ``ecgfm embed`` on CPU, per input format (median of --repeats runs in one invocation).

    python benchmarks/embed.py --model results/demo/pretrain/HL_p125_d2_e64 --records 500

Writes --records synthetic ECGs (ecgfm.demo, 500 Hz, 10 s) as a WFDB folder, as a CODE-style HDF5
file (400 Hz) and as standardized shards, then times the command's whole path (reading,
standardization with QC, 7 s CODE exams zero-padded
(--pad-short), batching, the encoder, writing the Parquet file), in process so that the
interpreter's start-up is not counted; the WFDB folder once read in the command's process and once
by --threads reading processes (`--workers`). Without --model a random-init encoder of
--architecture is used: the throughput does not depend on the weights.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ecgfm.cli import main as cli  # noqa: E402
from ecgfm.corpus import standardize_source  # noqa: E402
from ecgfm.demo import write_demo_source  # noqa: E402
from ecgfm.model import Architecture, ECGFoundationModel  # noqa: E402
from ecgfm.readers import make_reader  # noqa: E402
from ecgfm.standardize import Settings  # noqa: E402


def random_model(dest: Path, patch: int, depth: int, width: int) -> Path:
    from safetensors.torch import save_file
    arch = Architecture(patch=patch, depth=depth, width=width)
    model = ECGFoundationModel(arch)
    dest.mkdir(parents=True)
    save_file(model.encoder_state_dict(), str(dest / "encoder.safetensors"))
    (dest / "config.json").write_text(json.dumps({
        "architecture": arch.to_dict(), "preprocessing": {
            "fs": 250, "seconds": 10, "unit": "mV",
            "leads": ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]}}))
    return dest


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path)
    ap.add_argument("--architecture", default="125,2,64", help="patch,depth,width without --model")
    ap.add_argument("--records", type=int, default=500)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = args.model or random_model(tmp / "model", *map(int, args.architecture.split(",")))
        write_demo_source("wfdb", tmp / "wfdb", n_patients=args.records, seed=0)
        write_demo_source("code15", tmp / "code", n_patients=args.records, seed=0, max_ecgs_per_patient=1,
                          missing_waveforms=0)
        code = sorted((tmp / "code").glob("exams_part*.hdf5"))[0]
        standardize_source(make_reader("wfdb", tmp / "wfdb", "bench"), tmp / "shards", "bench", Settings(),
                           shard_size=256, threads=1, progress=False)
        print(f"model {model}, {args.threads} threads, {args.records} records per input")
        workers = str(args.threads)
        for name, path, readers in (("WFDB folder (500 Hz)", tmp / "wfdb", "1"),
                                    (f"  read by {workers} processes", tmp / "wfdb", workers),
                                    ("CODE-style HDF5 (400 Hz)", code, "1"), ("standardized shards", tmp / "shards", "1")):
            times = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                assert cli(["embed", "--model", str(model), "--input", str(path), "--out", str(tmp / "e.parquet"),
                            "--quiet", "--device", "cpu", "--pad-short", "--workers", readers]) == 0
                times.append(time.perf_counter() - start)
            t = statistics.median(times)
            print(f"{name:<26} {args.records / t:8.1f} records/s (median of {args.repeats}: {t:.2f} s)")


if __name__ == "__main__":
    main()
