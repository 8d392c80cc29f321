"""Wall time of ``ecgfm finetune --mode probe`` on all of real PTB-XL (21,799 records), in parts.

    python benchmarks/finetune_probe.py --model results/pretrain/HL_p125_d2_e64 --ptbxl /data/ptb-xl

The labels file is built from ``ptbxl_database.csv`` with targets the paper does not use: ``sex``
(binary: PTB-XL's 1 = female) and ``age`` (regression; the ages of 90 and over, stored as 300,
left out), ``patient_id`` and ``split`` from PTB-XL's ``strat_fold`` (1-8 train, 9 val, 10 test);
``record_id`` is ``filename_lr``, as ``ecgfm embed --input PTBXL_DIR`` names the records. Times,
in process (the interpreter's start-up not counted):

1. reading and standardization alone (every record of the folder through ``ecgfm.inference``),
   a first pass (which fills the page cache: its time is printed too), then the timed one by the
   default reading processes (one per core), and one in a single process (``--workers 1``),
2. the whole command with an empty embedding cache: reading, standardization and embedding,
   then fitting the heads on ``val``, thresholds, test metrics with bootstrap intervals, report;
   embedding = (2)'s reading-standardization-embedding time minus (1),
3. the command again for ``age`` alone with the cache filled: fitting without a new embedding.

Without --ptbxl the compact copy in ../shared/data is unpacked to a temporary folder first (not
timed). Prints one JSON object with the timings and the test metrics of both targets.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ecgfm.adapt import adapt  # noqa: E402
from ecgfm.inference import InputOptions, open_input  # noqa: E402

PTBXL_AGE_90_OR_OVER = 300      # PTB-XL stores the ages of patients of 90 and over as 300


def ptbxl_labels(root: Path, out: Path) -> Path:
    db = pd.read_csv(root / "ptbxl_database.csv")
    fold = db["strat_fold"].astype(int)
    table = pd.DataFrame({
        "record_id": db["filename_lr"], "patient_id": db["patient_id"].astype(int).astype(str),
        "split": fold.map(lambda f: "test" if f == 10 else "val" if f == 9 else "train"),
        "sex": db["sex"].astype("Int64"),
        "age": db["age"].where(db["age"] < PTBXL_AGE_90_OR_OVER)})
    table.to_csv(out, index=False)
    return out


def read_only(root: Path, preprocessing: dict, workers: int | None = None) -> tuple[float, int]:
    start = time.perf_counter()
    fmt, total, outcomes = open_input(root, preprocessing, InputOptions(workers=workers))
    ok = sum(o.ecg is not None for o in outcomes)
    return time.perf_counter() - start, ok


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, required=True, help="an encoder folder")
    ap.add_argument("--ptbxl", type=Path, help="PTB-XL in its PhysioNet layout (default: unpack ../shared)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, help="keep the model folders here (default: a temporary folder)")
    args = ap.parse_args()
    import torch
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        root = args.ptbxl
        if root is None:
            root = tmp / "ptbxl"
            subprocess.run([sys.executable, str(REPO.parent / "shared" / "data" / "ptbxl" / "unpack.py"), str(root)],
                           check=True, capture_output=True)
        labels = ptbxl_labels(root, tmp / "labels.csv")
        out = args.out or tmp / "models"
        preprocessing = json.loads((args.model / "config.json").read_text())["preprocessing"]
        cold_s, _ = read_only(root, preprocessing)              # fills the page cache, as a second run finds it
        read_s, read_ok = read_only(root, preprocessing)
        serial_s, _ = read_only(root, preprocessing, workers=1)
        start = time.perf_counter()
        first = adapt(args.model, root, labels, out / "sex_age", cache_dir=tmp / "cache",
                      command="benchmarks/finetune_probe.py: sex, age")
        first_s = time.perf_counter() - start
        start = time.perf_counter()
        second = adapt(args.model, root, labels, out / "age", targets=["age"], cache_dir=tmp / "cache",
                       command="benchmarks/finetune_probe.py: age, cached")
        second_s = time.perf_counter() - start
        t = first.info["timings_s"]
        test = first.metrics[first.metrics["split"] == "test"]
        print(json.dumps({
            "encoder": str(args.model), "threads": args.threads, "records_read_ok": read_ok,
            "counts": first.info["counts"],
            "reading_and_standardization_s": round(read_s, 1), "reading_first_pass_s": round(cold_s, 1),
            "reading_in_one_process_s": round(serial_s, 1),
            "embedding_s": round(t["read_standardize_embed_s"] - read_s, 1),
            "fitting_metrics_report_s": round(first_s - t["read_standardize_embed_s"], 1),
            "fit_heads_s": t["fit_probe_s"], "command_total_s": round(first_s, 1),
            "second_target_cached_s": round(second_s, 1),
            "test": {f"{r.target} {r.metric}": [round(r.value, 3), round(r.ci_low, 3), round(r.ci_high, 3), int(r.n)]
                     for r in test.itertuples()},
            "strengths": first.head.strengths}, indent=1))


if __name__ == "__main__":
    main()
