"""The evaluation stage on PTB-XL: each function is one workflow job, reading its inputs from
files and writing tidy rows (``ecgfm.results``). The numerics live in ``probe``, ``finetune``,
``subsample``, ``risk`` and ``metrics``; this module only wires them to the data.

Splits (``labels.parquet``, built by ``ecgfm.labels.labeled_table``): train = folds 1-8,
validation = fold 9 (every choice: probe strength, early stopping, best architecture),
test = fold 10 (reported only, with bootstrap CIs).
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd

from .probe import fit_probe, read_embeddings, write_embeddings
from .results import metric_rows, write_rows
from .risk import COMPONENTS, decompose, decompose_over_folds, heldout_patients
from .shards import ShardReader
from .subsample import case_ratio_draw, seed_for, stratified_fraction

log = logging.getLogger("ecgfm.evaluate")


def load_labels(labels_path, tasks) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    table = pd.read_parquet(labels_path)
    return table, table[list(tasks)].to_numpy(bool), table["split"].to_numpy(str)


def _reader_and_rows(ptbxl_dir, table: pd.DataFrame):
    reader = ShardReader(ptbxl_dir)
    rows = table["row"].to_numpy()
    if len(reader) <= rows.max(initial=-1):
        raise ValueError(f"{ptbxl_dir}: labels.parquet refers to row {rows.max()}, the manifest has {len(reader)}")
    return reader, rows


def record_chunks(ptbxl_dir, table: pd.DataFrame, chunk: int = 4096):
    """The standardized ECGs of the labeled records in table order, ``chunk`` at a time
    ([k, 12, samples] float32 each), so that a job can stream them."""
    reader, rows = _reader_and_rows(ptbxl_dir, table)
    for i in range(0, len(rows), chunk):
        yield reader.read(rows[i:i + chunk])


def read_records(ptbxl_dir, table: pd.DataFrame, dtype=np.float32) -> np.ndarray:
    """All the standardized ECGs of the labeled records, [n, 12, samples] in table order, read into
    one array: float32, or as the shards store them with ``dtype=None`` (float16 by default, for
    the trainers, which convert each batch to float32: the same numbers in half the memory)."""
    reader, rows = _reader_and_rows(ptbxl_dir, table)
    return reader.read(rows, dtype=dtype)


# --- embeddings and linear probing ---------------------------------------------------------------
def embed(model_name: str, model_dir, architecture: dict | None, ptbxl_dir, labels_path, out, seed: int,
          batch_size: int = 256) -> None:
    """Cache the embeddings of every labeled record. ``random_*`` models are a fresh random init
    of ``architecture`` (seeded); others are loaded from ``model_dir``."""
    import torch

    from .encoder import embed_array, load_model
    from .finetune import device_for_training
    from .model import Architecture, ECGFoundationModel
    device = device_for_training()
    if model_name.startswith("random_"):
        torch.manual_seed(seed)
        model = ECGFoundationModel(Architecture(**architecture)).to(device).eval()
    else:
        model = load_model(model_dir, device=device)
    table, start = pd.read_parquet(labels_path), time.perf_counter()
    parts = [embed_array(model, x, batch_size, device) for x in record_chunks(ptbxl_dir, table)]
    log.info("embedded %d records with %s in %.1f s", len(table), model_name, time.perf_counter() - start)
    write_embeddings(out, np.concatenate(parts), table["record_id"], model_name)


def linear_probe(model_name: str, embeddings_path, labels_path, tasks, settings: dict, out, seed: int,
                 scores_out=None) -> pd.DataFrame:
    """The probe's rows; with ``scores_out``, also its scores of the validation and test records
    (one column per task), from which Table 1 pairs each encoder with its random init."""
    table, y, split = load_labels(labels_path, tasks)
    x = read_embeddings(embeddings_path, table["record_id"].to_numpy(str))
    tr, va, te = split == "train", split == "validation", split == "test"
    probe = fit_probe(x[tr], y[tr], x[va], y[va], settings["c_grid"], settings["max_iter"])
    log.info("%s: C per task %s, validation AUROC %s", model_name, probe.c, np.round(probe.validation_auroc, 4))
    s_va, s_te = probe.scores(x[va]), probe.scores(x[te])
    rows = metric_rows(model_name, "linear_probe", "validation", tasks, y[va], s_va,
                       n_train=int(tr.sum()), seed=seed)
    rows += metric_rows(model_name, "linear_probe", "test", tasks, y[te], s_te,
                        resamples=settings["bootstrap_resamples"], n_train=int(tr.sum()), seed=seed)
    if scores_out is not None:
        scores = pd.DataFrame(np.vstack([s_va, s_te]), columns=list(tasks))
        scores.insert(0, "split", ["validation"] * int(va.sum()) + ["test"] * int(te.sum()))
        scores.insert(0, "record_id", np.concatenate([table["record_id"].to_numpy(str)[va],
                                                      table["record_id"].to_numpy(str)[te]]))
        Path(scores_out).parent.mkdir(parents=True, exist_ok=True)
        scores.to_parquet(scores_out, index=False)
    return write_rows(rows, out)


# --- fine-tuning and supervised baselines ------------------------------------------------------------
def finetune(model_name: str, spec: dict, encoder_dir, ptbxl_dir, labels_path, tasks, settings: dict,
             out_dir, seed: int, provenance: dict | None = None, labels: list | None = None) -> pd.DataFrame:
    """Fine-tune (``encoder_dir`` given) or train from scratch on folds 1-8, all tasks jointly.
    The saved model carries ``labels`` (``ecgfm.labels.label_definitions``) with each task's
    decision threshold: the probability that maximises F1 on the validation fold."""
    import torch

    from .finetune import new_classifier, save_classifier, train_classifier
    x, y, tr, va, te = _splits(ptbxl_dir, labels_path, tasks)
    model = new_classifier(spec, len(tasks), encoder_dir, seed)
    start = time.perf_counter()
    history = train_classifier(model, x[tr], y[tr], x[va], y[va], settings, seed,
                               pretrained=encoder_dir is not None, log=log.info)
    seconds = time.perf_counter() - start
    out = Path(out_dir)
    rows = _score(model, model_name, "finetune", "full", x, y, va, te, tasks, settings, seed, n_train=len(tr))
    from .pretrain import git_commit
    provenance = {"commit": git_commit(), "torch": torch.__version__, **(provenance or {})}
    if encoder_dir is not None:       # what the encoder was pretrained with and on
        pretrained = json.loads((Path(encoder_dir) / "config.json").read_text())
        provenance["pretraining"] = {k: pretrained.get(k) for k in ("name", "objective", "data", "training",
                                                                     "provenance")}
    from .finetune import predict_logits
    from .metrics import f1_threshold
    probabilities = 1.0 / (1.0 + np.exp(-predict_logits(model, x[va])))
    definitions = {d["task"]: d for d in (labels or [])}
    label_rows = [{**definitions.get(task, {"task": task}), "threshold": f1_threshold(y[va, k], probabilities[:, k]),
                   "threshold_rule": "maximises F1 on the validation fold (PTB-XL fold 9)"}
                  for k, task in enumerate(tasks)]
    save_classifier(model.cpu(), out, {
        **spec, "tasks": list(tasks), "outputs": "logits; sigmoid gives the probability of each task",
        "labels": label_rows,
        "preprocessing": settings["preprocessing"], "training": {
            "encoder": str(encoder_dir) if encoder_dir else None, "seed": seed, "seconds": round(seconds, 1),
            "epochs": len(history), "best_epoch": next(h["epoch"] for h in history if h["best"])},
        "provenance": provenance})
    pd.DataFrame(history).to_csv(out / "history.csv", index=False)
    return write_rows(rows, out / "results.parquet")


# --- low incidence and limited labels ------------------------------------------------------------------
def _score(model, model_name, protocol, setting, x, y, va, te, tasks, settings, seed, n_train) -> list[dict]:
    """Validation rows, and test rows with their bootstrap CIs, of a trained classifier."""
    from .finetune import predict_logits
    return (metric_rows(model_name, protocol, "validation", tasks, y[va], predict_logits(model, x[va]),
                        setting=setting, seed=seed, n_train=n_train)
            + metric_rows(model_name, protocol, "test", tasks, y[te], predict_logits(model, x[te]),
                          setting=setting, seed=seed, resamples=settings["bootstrap_resamples"], n_train=n_train))


def _fit_and_score(model_name, spec, encoder_dir, x, y, idx, va, te, tasks, settings, seed, protocol, setting):
    from .finetune import new_classifier, train_classifier
    model = new_classifier(spec, y.shape[1], encoder_dir, seed)
    train_classifier(model, x[idx], y[idx], x[va], y[va], settings, seed, pretrained=encoder_dir is not None,
                     log=log.debug)
    return _score(model, model_name, protocol, setting, x, y, va, te, tasks, settings, seed, n_train=len(idx))


def _splits(ptbxl_dir, labels_path, tasks):
    """ECGs (as stored: every consumer, ``ecgfm.finetune``'s training and inference, converts a
    batch at a time), labels, training positions, validation and test masks."""
    table, y, split = load_labels(labels_path, tasks)
    return (read_records(ptbxl_dir, table, dtype=None), y, np.flatnonzero(split == "train"), split == "validation",
            split == "test")


def case_ratio(model_name, spec, encoder_dir, ptbxl_dir, labels_path, tasks, settings, ratios, size: int,
               seed: int, out) -> pd.DataFrame:
    """Per task and ratio: ``size`` training ECGs with ``ratio`` positives (one binary model each)."""
    x, y, train, va, te = _splits(ptbxl_dir, labels_path, tasks)
    rows = []
    for ratio in ratios:
        for k, task in enumerate(tasks):
            idx = train[case_ratio_draw(y[train, k], size, ratio, seed_for(seed, task, ratio))]
            log.info("%s: case ratio %s, %s, %d positives of %d", model_name, ratio, task, y[idx, k].sum(), len(idx))
            rows += _fit_and_score(model_name, spec, encoder_dir, x, y[:, [k]], idx, va, te, [task], settings,
                                   seed, "case_ratio", f"ratio={ratio:g}")
    return write_rows(rows, out)


def data_usage(model_name, spec, encoder_dir, ptbxl_dir, labels_path, tasks, settings, fractions, seed: int,
               out) -> pd.DataFrame:
    """Per fraction: that share of the training labels, stratified on the task labels, all tasks jointly."""
    x, y, train, va, te = _splits(ptbxl_dir, labels_path, tasks)
    rows = []
    for fraction in fractions:
        idx = train[stratified_fraction(y[train], fraction, seed_for(seed, fraction))]
        log.info("%s: data usage %s, %d training records", model_name, fraction, len(idx))
        rows += _fit_and_score(model_name, spec, encoder_dir, x, y, idx, va, te, tasks, settings, seed,
                               "data_usage", f"usage={fraction:g}")
    return write_rows(rows, out)


# --- fewer leads ---------------------------------------------------------------------------------------
def lead_subsets(model_name: str, encoder_dir, finetuned_dir, ptbxl_dir, labels_path, tasks, subsets: dict,
                 settings: dict, seed: int, out) -> pd.DataFrame:
    """What a user with fewer leads can expect: for each named lead subset, the records as a device
    recording only those leads gives them to the tool (``ecgfm.leads.restrict_to_leads``: limb
    leads derived from two kept ones, the rest zeros), then (a) a linear probe trained, chosen and
    tested on that subset (protocol ``lead_subset_probe``) and (b) the fine-tuned 12-lead model
    tested on it (``lead_subset_finetune``); setting ``leads=<name>``. Subsets that give the same
    input (I+II and the six limb leads, say) are computed once."""
    import torch

    from .encoder import embed_array, load_model
    from .finetune import device_for_training, load_classifier, predict_logits
    from .leads import CANONICAL_LEADS, leads_from, restrict_to_leads
    device = device_for_training()
    encoder = load_model(encoder_dir, device=device)
    classifier, _ = load_classifier(finetuned_dir, device=device)
    table, y, split = load_labels(labels_path, tasks)
    x = read_records(ptbxl_dir, table)
    tr, va, te = split == "train", split == "validation", split == "test"
    rows, done = [], {}
    for name, keep in subsets.items():
        keep = [lead for lead in CANONICAL_LEADS if lead in keep]
        effective = tuple(sorted(leads_from(keep)))
        if effective not in done:
            xs = restrict_to_leads(x, keep)
            with torch.no_grad():
                emb = embed_array(encoder, xs, 256, device)
            probe = fit_probe(emb[tr], y[tr], emb[va], y[va], settings["c_grid"], settings["max_iter"])
            done[effective] = (probe.scores(emb[te]), predict_logits(classifier, xs[te], 256, device))
            log.info("%s, leads %s: probe C %s, validation AUROC %s", model_name, name, probe.c,
                     np.round(probe.validation_auroc, 4))
        probe_scores, ft_scores = done[effective]
        for protocol, scores in (("lead_subset_probe", probe_scores), ("lead_subset_finetune", ft_scores)):
            rows += metric_rows(model_name, protocol, "test", tasks, y[te], scores, setting=f"leads={name}",
                                seed=seed, resamples=settings["bootstrap_resamples"], n_train=int(tr.sum()))
    return write_rows(rows, out)


# --- risk decomposition ---------------------------------------------------------------------------
def risk(ssl_model: str, ssl_embeddings, supervised_embeddings, labels_path, tasks, settings: dict, seed: int,
         out) -> pd.DataFrame:
    """Table 2's rows for one SSL encoder (``ecgfm.risk``): the components with paired bootstrap
    CIs, held-out patients drawn from folds 1-8 stratified by label (setting ``full``), and with
    ``settings["heldout_folds"]`` the components with each training fold as the held-out set in
    turn (setting ``heldout=fold``, the fold as ``seed``)."""
    from .results import describe_model
    table, y, split = load_labels(labels_path, tasks)
    ids = table["record_id"].to_numpy(str)
    ssl, sup = read_embeddings(ssl_embeddings, ids), read_embeddings(supervised_embeddings, ids)
    train = split == "train"
    heldout = np.zeros(len(table), bool)
    heldout[train] = heldout_patients(table["patient_id"].to_numpy(str)[train], int((split == "test").sum()), seed,
                                      labels=y[train])
    grids = {"c_grid": settings["c_grid"], "train_c_grid": settings["train_c_grid"], "max_iter": settings["max_iter"]}
    parts = decompose(sup, ssl, y, split, heldout, resamples=settings["bootstrap_resamples"], seed=seed, **grids)
    info = describe_model(ssl_model)
    base = {**info, "protocol": "risk", "split": "test", "n_train": int(train.sum())}
    rows = [{**base, "task": task, "setting": "full", "seed": seed, "metric": comp, "value": parts[k][comp],
             "ci_low": parts[k].get(f"{comp}_ci", (None, None))[0], "ci_high": parts[k].get(f"{comp}_ci", (None, None))[1]}
            for k, task in enumerate(tasks) for comp in COMPONENTS]
    if settings.get("heldout_folds"):
        folds = decompose_over_folds(sup, ssl, y, split, table["strat_fold"].to_numpy(), **grids)
        rows += [{**base, "task": task, "setting": "heldout=fold", "seed": fold, "metric": comp,
                  "value": per_task[k][comp], "ci_low": None, "ci_high": None}
                 for fold, per_task in folds.items() for k, task in enumerate(tasks) for comp in COMPONENTS]
    log.info("%s: %s", ssl_model, {t: {c: round(parts[k][c], 4) for c in COMPONENTS} for k, t in enumerate(tasks)})
    return write_rows(rows, out)


def write_json(obj, path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(obj, indent=2) + "\n")


# --- PTB-XL's benchmark task sets -----------------------------------------------------------------
def _benchmark_task_sets(model_name: str, table: pd.DataFrame, task_sets, mode: str, seed: int):
    """Per task set (``ecgfm.ptbxl_tasks.benchmark_table``): (its position k, which records of
    ``table`` are in it, their split masks, y [its records, scorable classes], the base of its
    rows). A class without a positive or a negative in one of the splits cannot be fitted or
    scored: it is left out of that set's macro AUROC, named in the log and counted (``classes``
    against ``classes_scored``)."""
    from .ptbxl_tasks import task_set_columns
    from .results import describe_model
    for k, name in enumerate(task_sets):
        in_set = table[name].to_numpy()
        part, columns = table[in_set], task_set_columns(table, name)
        split = part["split"].to_numpy(str)
        masks = {s: split == s for s in ("train", "validation", "test")}
        y = part[columns].to_numpy(bool)
        fit = [c for c in range(len(columns)) if all(0 < y[m, c].sum() < m.sum() for m in masks.values())]
        if len(fit) < len(columns):
            log.info("%s, %s: %d of %d classes lack a positive or a negative in a split, left out: %s", model_name,
                     name, len(columns) - len(fit), len(columns), [columns[c] for c in range(len(columns)) if c not in fit])
        row = {**describe_model(model_name), "protocol": "ptbxl_benchmark", "task": name, "setting": mode,
               "seed": seed, "metric": "macro_AUROC", "classes": len(columns), "classes_scored": len(fit),
               "n_train": int(masks["train"].sum()), "n_test": int(masks["test"].sum())}
        yield k, in_set, masks, y[:, fit], row


def _benchmark_rows(row: dict, y, masks, score, settings: dict, seed: int, k: int) -> list[dict]:
    """A task set's validation and test rows: macro AUROC of ``score(split)`` on fold 9, and on
    fold 10 with its bootstrap 95% interval (``metrics.macro_auroc_ci``); NaN where no class is
    scorable."""
    from .metrics import macro_auroc_ci
    if not y.shape[1]:
        return [{**row, "split": s, "value": np.nan, "ci_low": np.nan, "ci_high": np.nan} for s in ("validation", "test")]
    val = macro_auroc_ci(y[masks["validation"]], score("validation"), 0, seed)
    test = macro_auroc_ci(y[masks["test"]], score("test"), settings["bootstrap_resamples"], seed * 1000 + k)
    log.info("%s, %s, %s: %d classes, macro AUROC validation %.4f, test %.4f [%.4f, %.4f]", row["model"], row["task"],
             row["setting"], y.shape[1], val[0], *test)
    return [{**row, "split": "validation", "value": val[0], "ci_low": np.nan, "ci_high": np.nan},
            {**row, "split": "test", "value": test[0], "ci_low": test[1], "ci_high": test[2]}]


def ptbxl_benchmark_probe(model_name: str, embeddings_path, labels_path, task_sets, settings: dict, out,
                          seed: int) -> pd.DataFrame:
    """One encoder on PTB-XL's benchmark task sets: per set, a multi-label linear probe (one
    logistic regression per class, C chosen per class on the validation fold) on the records of
    the set, scored by macro AUROC on the test fold with a bootstrap 95% interval."""
    table = pd.read_parquet(labels_path)
    x_all = read_embeddings(embeddings_path, table["record_id"].to_numpy(str))
    rows = []
    for k, in_set, masks, y, row in _benchmark_task_sets(model_name, table, task_sets, "linear_probe", seed):
        x, tr, va = x_all[in_set], masks["train"], masks["validation"]
        probe = fit_probe(x[tr], y[tr], x[va], y[va], settings["c_grid"], settings["max_iter"]) if y.shape[1] else None
        rows += _benchmark_rows(row, y, masks, lambda s: probe.scores(x[masks[s]]), settings, seed, k)
    return write_rows(pd.DataFrame(rows), out)


def ptbxl_benchmark_finetune(model_name: str, spec: dict, encoder_dir, ptbxl_dir, labels_path, task_sets,
                             settings: dict, out, seed: int) -> pd.DataFrame:
    """One classifier per benchmark task set, trained as Table 3's are (``finetune``): with
    ``encoder_dir``, the pretrained encoder fine-tuned by LP-FT (setting ``finetune``); without,
    the ViT or the 1D-ResNet50 of ``spec`` trained from scratch (setting ``supervised``). One
    multi-label head over the set's scorable classes, folds 1-8 train, early stopping on fold 9's
    mean AUROC, macro AUROC on fold 10 with its bootstrap 95% interval."""
    from .finetune import new_classifier, predict_logits, train_classifier
    table = pd.read_parquet(labels_path)
    x_all = read_records(ptbxl_dir, table, dtype=None)      # as stored: training converts each batch
    mode = "supervised" if encoder_dir is None else "finetune"
    rows = []
    for k, in_set, masks, y, row in _benchmark_task_sets(model_name, table, task_sets, mode, seed):
        x, tr, va = x_all[in_set], masks["train"], masks["validation"]
        if y.shape[1]:
            model = new_classifier(spec, y.shape[1], encoder_dir, seed)
            history = train_classifier(model, x[tr], y[tr], x[va], y[va], settings, seed,
                                       pretrained=encoder_dir is not None, log=log.info)
            row["epochs"] = len(history)
        rows += _benchmark_rows(row, y, masks, lambda s: predict_logits(model, x[masks[s]]), settings, seed, k)
    return write_rows(pd.DataFrame(rows), out)
