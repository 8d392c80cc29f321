"""``ecgfm`` command line: the data stages outside Snakemake (one source, one command).

    ecgfm standardize --source ptbxl --root /data/ptb-xl --out results/standardized/ptbxl
    ecgfm download --source code15 --dest /data/code15
    ecgfm demo ptbxl /tmp/demo-ptbxl --patients 100
    ecgfm embed --model results/pretrain/HL_p60_d2_e512 --input my_wfdb_folder --out embeddings.parquet
    ecgfm predict --model results/eval/finetune/HL_p60_d2_e512 --input exams.hdf5 --out predictions.csv
    ecgfm ptbxl-labels /data/ptb-xl --task-set superdiagnostic --out labels.csv
    ecgfm finetune --model results/pretrain/HL_p60_d2_e512 --input my_ecgs --labels labels.csv --out my_model
    ecgfm predict --model my_model --input new_ecgs --out predictions.csv
    ecgfm profiles install     # then `snakemake --profile slurm` (or demo, local, ptbxl-cpu, ptbxl-gpu) as written
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from .config import load_config, raw_dir, standardize_block
from .ptbxl_tasks import TASK_SETS


def _config(args):
    return load_config(*(args.config or ["config.yaml"]))


def cmd_standardize(args) -> int:
    from .corpus import standardize_source
    from .readers import make_reader
    from .standardize import Settings

    config = _config(args)
    src = config["sources"][args.source]
    block = standardize_block(config, args.source)
    reader = make_reader(src["reader"], args.root or raw_dir(config, args.source), args.source,
                         src.get("reader_options"))
    start = time.perf_counter()
    summary = standardize_source(reader, args.out, args.source,
                                 Settings.from_config(block, expected_fs=reader.expected_fs),
                                 shard_size=block["shard_size"], dtype=block["dtype"],
                                 compression=block["compression"],
                                 threads=args.threads or block["threads"], chunk_size=block["chunk_size"])
    summary["wall_s"] = round(time.perf_counter() - start, 1)
    print(json.dumps(summary, indent=2))
    return 0


def cmd_download(args) -> int:
    from .download import download_source

    config = _config(args)
    spec = config["sources"][args.source].get("download")
    if not spec:
        print(f"sources.{args.source} has no download block", file=sys.stderr)
        return 2
    files = download_source(spec, args.dest, config["download"])
    print(f"{len(files)} files verified under {args.dest}")
    return 0


def cmd_demo(args) -> int:
    from .demo import write_demo_source

    print(json.dumps(write_demo_source(args.layout, args.dest, n_patients=args.patients, seed=args.seed)))
    return 0


def cmd_profiles(args) -> int:
    from .profiles import PROFILES, install
    try:
        done = install(args.dest, names=args.names or PROFILES, copy=args.copy, force=args.force)
    except (FileExistsError, FileNotFoundError) as exc:
        print(f"ecgfm profiles install: {exc}", file=sys.stderr)
        return 2
    for name, what in done:
        print(f"{name}: {what}")
    print("run from the repository root, e.g. snakemake --profile demo  /  snakemake --profile slurm")
    return 0


def cmd_ptbxl_labels(args) -> int:
    from .ptbxl_tasks import labels_file
    try:
        frame, left_out = labels_file(args.ptbxl_dir, args.task_set, rate=args.rate, min_count=args.min_count)
    except FileNotFoundError as exc:
        print(f"ecgfm ptbxl-labels: {exc} (is {args.ptbxl_dir} a PTB-XL folder?)", file=sys.stderr)
        return 2
    frame.to_csv(args.out, index=False)
    classes = frame.columns[3:]
    print(f"{args.task_set}: {len(classes)} classes, {len(frame)} records "
          f"({', '.join(f'{s} {n}' for s, n in frame['split'].value_counts().items())}) -> {args.out}",
          file=sys.stderr)
    reasons = {}
    for _, reason in left_out:
        key = reason.split(":")[0]
        reasons[key] = reasons.get(key, 0) + 1
    for reason, count in reasons.items():
        example = next(e for e, r in left_out if r.startswith(reason))
        print(f"  left out x{count}: {reason} (e.g. ecg_id {example})", file=sys.stderr)
    return 0


def _summary(frame, out, what) -> None:
    rejected = frame[frame["status"] == "rejected"]
    if "window" in frame:            # one row per window: a left-out window is a row of its own
        windows, rejected = rejected[rejected["window"].notna()], rejected[rejected["window"].isna()]
        left_out = (len(windows), windows["record_id"].nunique())
    elif "windows_left_out" in frame:
        counts = frame["windows_left_out"].fillna(0)
        left_out = (int(counts.sum()), int((counts > 0).sum()))
    else:
        left_out = (0, 0)
    records = frame["record_id"].nunique() if "window" in frame else len(frame)
    print(f"{frame.attrs['format']}: {records - len(rejected)} records {what}, {len(rejected)} rejected "
          f"-> {out}", file=sys.stderr)
    if left_out[0]:
        print(f"  windows left out by quality checks: {left_out[0]}, of {left_out[1]} record(s) (see their reason)",
              file=sys.stderr)
    for reason, count in rejected["reason"].value_counts().head(10).items():
        print(f"  rejected x{count}: {reason}", file=sys.stderr)


def _input_options(args):
    from .inference import InputOptions
    return InputOptions(fs=args.fs, unit=args.unit, keep_flagged=args.keep_flagged, pad_short=args.pad_short,
                        leads=InputOptions.parse_leads(args.leads), window_stride_s=args.window_stride,
                        per_window=args.per_window, workers=args.workers)


def cmd_embed(args) -> int:
    from .encoder import load_encoder
    from .inference import InputError, embed_records
    try:
        options = _input_options(args)
        encoder = load_encoder(args.model, device=args.device)
        frame = embed_records(encoder, args.input, batch_size=args.batch_size, progress=not args.quiet,
                              options=options)
    except InputError as exc:
        print(f"ecgfm embed: {exc}", file=sys.stderr)
        return 2
    frame.to_parquet(args.out, index=False)
    _summary(frame, args.out, "embedded")
    return 0


def cmd_finetune(args) -> int:
    from .adapt import adapt
    from .inference import InputError
    from .config import ConfigError, section_from_files
    from .labels import LabelsError
    try:
        options = _input_options(args)
        kinds = {}
        for item in args.target_type or []:
            name, sep, kind = item.partition("=")
            if not sep:
                raise LabelsError(f"--target-type {item!r}: COLUMN=binary|multiclass|regression")
            kinds[name] = kind
        settings = section_from_files("adaptation", *args.config) if args.config else None
        model = adapt(args.model, args.input, args.labels, args.out, mode=args.mode,
                      targets=args.targets.split(",") if args.targets else None, kinds=kinds,
                      threshold=args.threshold, seed=args.seed, settings=settings, options=options,
                      cache_dir=None if args.cache_dir == "none" else args.cache_dir, device=args.device,
                      batch_size=args.batch_size, progress=not args.quiet, command="ecgfm " + " ".join(sys.argv[1:]))
    except (InputError, LabelsError, ConfigError) as exc:
        print(f"ecgfm finetune: {exc}", file=sys.stderr)
        return 2
    counts = model.info["counts"]
    print(f"{counts['used']} labelled records used (train {counts['train']}, val {counts['val']}, test "
          f"{counts['test']}); {counts['not_found']} not found, {counts['rejected']} rejected -> "
          f"{args.out}/excluded.csv", file=sys.stderr)
    test = model.metrics[model.metrics["split"] == "test"]
    print(test.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"model, metrics.csv and report.md -> {args.out}", file=sys.stderr)
    return 0


def _default_cache() -> str:
    import os
    return str(Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ecgfm" / "embeddings")


def _predict_adapted(args) -> int:
    from .adapt import load
    from .inference import InputError
    try:
        options = _input_options(args)
        model = load(args.model, device=args.device)
        frame = model.predict(args.input, options=options, batch_size=args.batch_size, progress=not args.quiet)
    except InputError as exc:
        print(f"ecgfm predict: {exc}", file=sys.stderr)
        return 2
    frame.to_csv(args.out, index=False, float_format="%.6f")
    _summary(frame, args.out, "predicted")
    return 0


def cmd_predict(args) -> int:
    from .adapt import is_adapted
    if is_adapted(args.model):
        return _predict_adapted(args)
    from .finetune import load_classifier
    from .inference import InputError, predict_records
    try:
        options = _input_options(args)
        model, config = load_classifier(args.model, device=args.device)
        frame = predict_records(model, config, args.input, batch_size=args.batch_size, progress=not args.quiet,
                                options=options)
    except InputError as exc:
        print(f"ecgfm predict: {exc}", file=sys.stderr)
        return 2
    frame.to_csv(args.out, index=False, float_format="%.6f")
    if config.get("labels"):
        legend = Path(str(args.out) + ".labels.json")
        legend.write_text(json.dumps(config["labels"], indent=2) + "\n")
        print(f"labels (names, SCP codes, thresholds) -> {legend}", file=sys.stderr)
    _summary(frame, args.out, "predicted")
    return 0


def _model_command(sub, name, help_text, func, out_help):
    p = sub.add_parser(name, help=help_text)
    p.add_argument("--model", required=True, help="model folder (config.json + safetensors)")
    p.add_argument("--input", required=True,
                   help="a folder or file of ECGs: WFDB (.hea), DICOM (.dcm), MUSE or CardioSoft XML, .npy/.csv "
                        "with a JSON sidecar, a CODE-style HDF5 file (tracings), or standardized shards")
    p.add_argument("--out", required=True, help=out_help)
    p.add_argument("--fs", type=float, default=400.0, help="sampling rate of a CODE-style HDF5 file (Hz)")
    p.add_argument("--unit", default="mV", help="unit of a CODE-style HDF5 file (mV, uV, V)")
    p.add_argument("--keep-flagged", action="store_true",
                   help="use records that fail a quality check (their flags go to 'reason')")
    p.add_argument("--pad-short", action="store_true",
                   help="zero-pad records of 7 s or more to 10 s (as the CODE-15%% corpus was); noted in 'reason'")
    p.add_argument("--leads", default="all",
                   help="all (the model's 12; missing limb leads derived from two recorded ones), available "
                        "(whatever each record has, the rest zeros), or the leads you have, e.g. I,II")
    p.add_argument("--window-stride", type=float, metavar="SECONDS",
                   help="slide windows of the model's length this far apart over longer records and average "
                        "those that pass the quality checks (default: the centre window)")
    p.add_argument("--per-window", action="store_true",
                   help="with --window-stride: one row per window (a window that fails a check: rejected, its reason)")
    p.add_argument("--workers", type=int, metavar="N",
                   help="processes that read and standardize the files (default: one per core; 1: none)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--device", default="cuda" if _cuda() else "cpu")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=func)
    return p


def _cuda() -> bool:
    try:
        import torch
        return torch.cuda.is_available()
    except ImportError:
        return False


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="ecgfm", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("standardize", help="standardize one source into shards + manifest + quarantine")
    p.add_argument("--source", required=True)
    p.add_argument("--root", help="raw archive folder (default: the config's path or download dir)")
    p.add_argument("--out", required=True)
    p.add_argument("--threads", type=int)
    p.add_argument("--config", action="append", help="config file(s), later ones overlay (default config.yaml)")
    p.set_defaults(func=cmd_standardize)
    p = sub.add_parser("download", help="download and verify one source")
    p.add_argument("--source", required=True)
    p.add_argument("--dest", required=True)
    p.add_argument("--config", action="append")
    p.set_defaults(func=cmd_download)
    p = sub.add_parser("demo", help="write a synthetic archive in a source's real format")
    p.add_argument("layout")
    p.add_argument("dest")
    p.add_argument("--patients", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_demo)
    p = sub.add_parser("profiles", help="install the Snakemake profiles under their names (snakemake --profile slurm)")
    p.add_argument("action", choices=["install"])
    p.add_argument("names", nargs="*", help="profiles to install (default: slurm demo local ptbxl-cpu ptbxl-gpu)")
    p.add_argument("--dest", help="profile directory (default: Snakemake's, ~/.config/snakemake)")
    p.add_argument("--copy", action="store_true", help="copy instead of linking")
    p.add_argument("--force", action="store_true", help="replace profiles of these names that are not ours")
    p.set_defaults(func=cmd_profiles)
    _model_command(sub, "embed", "embeddings of one's own ECGs (one row per record)", cmd_embed,
                   "output .parquet: record_id, status, reason, embedding")
    p = sub.add_parser("ptbxl-labels", help="one of PTB-XL's benchmark task sets as a labels file "
                                            "(record_id as ecgfm embed names the records)")
    p.add_argument("ptbxl_dir", help="a PTB-XL folder: ptbxl_database.csv, scp_statements.csv, records500/100")
    p.add_argument("--task-set", required=True, choices=TASK_SETS,
                   help="the benchmark's task set (Strodthoff et al. 2021)")
    p.add_argument("--out", required=True, help="output .csv: record_id, patient_id, split, one 0/1 column per class")
    p.add_argument("--rate", type=int, choices=[500, 100], default=500,
                   help="name the records500 (default) or records100 files, as `ecgfm embed --input` would")
    p.add_argument("--min-count", type=int, default=0,
                   help="keep a class only where more records than this carry it (the benchmark's min_samples, 0)")
    p.set_defaults(func=cmd_ptbxl_labels)
    _model_command(sub, "predict", "predictions of a model of `ecgfm finetune`, or MI / STTC / CD / HYP "
                   "probabilities of the workflow's fine-tuned models", cmd_predict,
                   "output .csv: record_id, status, reason, the predictions (probabilities, <target>_positive, "
                   "classes, values)")
    p = _model_command(sub, "finetune", "adapt an encoder to one's own labelled ECGs (probe or LP-FT)",
                       cmd_finetune, "model folder: weights, head, targets, metrics.csv, report.md")
    p.add_argument("--labels", required=True,
                   help="CSV or Parquet: record_id (as ecgfm embed names records), optional patient_id and split "
                        "(train/val/test), one column per target (docs/adapting.md)")
    p.add_argument("--mode", choices=["probe", "finetune"], default="probe",
                   help="probe: a linear head on cached embeddings (default); finetune: LP-FT of encoder and head")
    p.add_argument("--targets", help="comma-separated target columns (default: every column but the ids)")
    p.add_argument("--target-type", action="append", metavar="COLUMN=KIND",
                   help="override a target's inferred kind: binary, multiclass or regression (repeatable)")
    p.add_argument("--threshold", default="f1",
                   help="decision thresholds of binary targets on val: f1 (default) or sensitivity=0.9")
    p.add_argument("--seed", type=int, default=0, help="seed of the split and the bootstrap")
    p.add_argument("--config", action="append", help="YAML file(s) whose adaptation: section overrides the "
                                                     "defaults (the values of config.yaml)")
    p.add_argument("--cache-dir", default=_default_cache(),
                   help="where embeddings are cached (default ~/.cache/ecgfm/embeddings; none: no cache)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
