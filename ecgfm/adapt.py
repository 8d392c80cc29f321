"""Adapting a pretrained encoder to one's own labelled ECGs: split, head, choices on ``val``,
thresholds, test metrics with intervals. The CLI (``ecgfm finetune``), the Python API
(``ecgfm.adapt_encoder``) and the workflow's ``datasets:`` jobs all call ``adapt``.

* Targets and their kinds come from ``ecgfm.labels`` (a user's labels file).
* Split: the labels' ``split`` column, else patient-grouped (``patient_id``, else each record its
  own group), label-stratified ``adaptation.split`` fractions (80/10/10) with the seed
  (``assign_splits``: each group, rarest label first, goes where that label lacks most).
* ``probe``: embeddings computed once (cached by encoder, input and options), standardized with
  the training records' mean and deviation, then per target an L2 logistic regression (binary),
  a multinomial one (multi-class) or a ridge regression, its strength chosen on ``val``.
* ``finetune``: LP-FT. The probe is the head's starting point, then encoder and head train
  jointly (``ecgfm.finetune.train_classifier``: the encoder at ``encoder_lr_scale`` of the head's
  rate, early stopping on the ``val`` score), on the GPU where there is one. A random-init
  encoder folder (``ecgfm.encoder.write_random_encoder``: a ViT, or the 1D-ResNet50) is trained
  from scratch instead: the supervised baselines, with heads of every kind.
* Thresholds of binary targets on ``val`` (max F1, or the highest one reaching a sensitivity);
  metrics on ``test`` with paired percentile bootstrap intervals (one draw of the test records
  for every target and metric).

The head works on embeddings, so a model folder is an encoder folder (``config.json``,
``encoder.safetensors``) plus ``head.npz`` and ``model.json``: ``predict`` embeds and applies it.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .labels import (SPLITS, LabelsError, Target, check_labels, encode_target, label_targets,
                     read_labels_file)
from .metrics import (auroc, f1_threshold, percentile_interval, sensitivity_threshold, weighted_auprc,
                      weighted_auroc, weighted_brier, weighted_multiclass, weighted_regression,
                      weighted_threshold_metrics)
from .probe import choose_strength

log = logging.getLogger("ecgfm.adapt")
METRIC_COLUMNS = ["target", "metric", "value", "ci_low", "ci_high", "split", "n"]
MODES = ("probe", "finetune")


def default_settings() -> dict:
    """``adaptation`` as the schema's defaults give it (the values of config.yaml)."""
    from .config import section_defaults
    return section_defaults("adaptation")


# --- split ------------------------------------------------------------------------------------------
def strata(y: np.ndarray, targets: list[Target], bins: int) -> np.ndarray:
    """[n, labels] booleans to stratify on: each binary target's positives, each class of a
    multi-class target, and ``bins`` quantile bins of a regression target."""
    cols = []
    for k, t in enumerate(targets):
        v = y[:, k]
        if t.kind == "binary":
            cols.append(v == 1)
        elif t.kind == "multiclass":
            cols += [v == c for c in range(len(t.classes))]
        else:
            finite = v[np.isfinite(v)]
            edges = np.quantile(finite, np.linspace(0, 1, bins + 1)[1:-1]) if len(finite) else []
            which = np.searchsorted(edges, v, side="right")
            cols += [np.isfinite(v) & (which == b) for b in range(bins)]
    return np.stack(cols, axis=1) if cols else np.zeros((len(y), 0), bool)


def assign_splits(groups, labels: np.ndarray, fractions, seed: int) -> np.ndarray:
    """Split names (train / val / test) per record, whole groups (patients) at a time, each label's
    records shared out near ``fractions``. Groups go in order of their rarest label (random within),
    each to the split lacking that label most (by then, to the one lacking records most)."""
    groups = np.asarray(groups).astype(str)
    names, inverse = np.unique(groups, return_inverse=True)
    labels = np.asarray(labels, bool)
    per_group = np.zeros((len(names), labels.shape[1]))
    np.add.at(per_group, inverse, labels)
    size = np.bincount(inverse, minlength=len(names)).astype(float)
    fractions = np.asarray(fractions, float) / np.sum(fractions)
    want_labels = fractions[:, None] * per_group.sum(axis=0)[None, :]
    want_size = fractions * size.sum()
    have_labels, have_size = np.zeros_like(want_labels), np.zeros(len(fractions))
    rng = np.random.default_rng(seed)
    totals = per_group.sum(axis=0)
    rarity = np.array([totals[row > 0].min() if (row > 0).any() else np.inf for row in per_group])
    order = rng.permutation(len(names))
    order = order[np.argsort(rarity[order], kind="stable")]
    split_of = np.empty(len(names), int)
    for g in order:
        present = np.flatnonzero(per_group[g] > 0)
        size_gap = want_size - have_size
        if len(present):
            label = present[np.argmin(totals[present])]
            gap = want_labels[:, label] - have_labels[:, label]
            best = np.flatnonzero(np.isclose(gap, gap.max()))
            best = best[np.isclose(size_gap[best], size_gap[best].max())]
        else:
            best = np.flatnonzero(np.isclose(size_gap, size_gap.max()))
        s = int(rng.choice(best))
        split_of[g] = s
        have_labels[s] += per_group[g]
        have_size[s] += size[g]
    return np.asarray(SPLITS)[split_of[inverse]]


def check_patient_splits(table: pd.DataFrame) -> None:
    if "patient_id" not in table or "split" not in table:
        return
    known = table.dropna(subset=["patient_id"])
    counts = known.groupby("patient_id")["split"].nunique()
    shared = counts[counts > 1].index.tolist()
    if shared:
        raise LabelsError(f"{len(shared)} patient(s) have records in more than one split: "
                          f"{', '.join(map(str, shared[:5]))}{' ...' if len(shared) > 5 else ''} "
                          f"(records of a patient must share a split)")


def check_split_classes(y: np.ndarray, split: np.ndarray, targets: list[Target]) -> None:
    """Every classification target needs two classes in train and in val; regression two values."""
    for k, t in enumerate(targets):
        for name in ("train", "val"):
            v = y[split == name, k]
            v = v[np.isfinite(v)]
            if len(np.unique(v)) < 2:
                what = "value" if t.kind == "regression" else "class"
                found = f" ({t.classes[int(v[0])] if t.kind == 'multiclass' else f'{v[0]:g}'})" if len(v) else ""
                raise LabelsError(f"target {t.name}: {len(v)} labelled record(s) in {name}, a single {what}"
                                  f"{found}: it cannot be fitted or chosen on")


# --- heads ------------------------------------------------------------------------------------------
def _slices(targets: list[Target]) -> list[slice]:
    ends = np.cumsum([t.width for t in targets])
    return [slice(int(e - t.width), int(e)) for t, e in zip(targets, ends)]


@dataclass
class Head:
    """A linear head on standardized embeddings: outputs = ((z - mean) / scale) @ weight.T + bias,
    each target's slice of the outputs a logit (binary), logits (multi-class) or a value."""
    targets: list
    mean: np.ndarray
    scale: np.ndarray
    weight: np.ndarray          # [outputs, width]
    bias: np.ndarray            # [outputs]
    strengths: dict = field(default_factory=dict)

    def raw(self, z: np.ndarray) -> np.ndarray:
        return ((np.asarray(z, np.float64) - self.mean) / self.scale) @ self.weight.T + self.bias

    def outputs(self, z: np.ndarray) -> dict:
        """target -> probability [n] (binary), probabilities [n, classes] (multi-class), value [n]."""
        raw, out = self.raw(z), {}
        for t, s in zip(self.targets, _slices(self.targets)):
            r = raw[:, s]
            if t.kind == "binary":
                out[t.name] = 0.5 * (1.0 + np.tanh(0.5 * r[:, 0]))     # the logistic, without overflow
            elif t.kind == "multiclass":
                e = np.exp(r - r.max(axis=1, keepdims=True))
                out[t.name] = e / e.sum(axis=1, keepdims=True)
            else:
                out[t.name] = r[:, 0]
        return out

    def save(self, path) -> None:
        np.savez(path, mean=self.mean, scale=self.scale, weight=self.weight, bias=self.bias)

    @staticmethod
    def load(path, targets, strengths=None) -> "Head":
        with np.load(path, allow_pickle=False) as f:
            return Head(list(targets), f["mean"], f["scale"], f["weight"], f["bias"], dict(strengths or {}))


def validation_score(target: Target, y: np.ndarray, output: np.ndarray) -> float:
    """What a choice on ``val`` maximises: AUROC, macro AUROC, or R²."""
    if target.kind == "binary":
        return auroc(y == 1, output)
    if target.kind == "multiclass":
        return float(weighted_multiclass(y.astype(int), output, np.ones(len(y)))["macro_AUROC"][0])
    return float(weighted_regression(y, output, np.ones(len(y)))["R2"][0])


def _fit_one(target: Target, strength: float, z: np.ndarray, y: np.ndarray, max_iter: int):
    """(weight [width_t, d], bias [width_t]) of one target's linear model at one strength."""
    from sklearn.linear_model import LogisticRegression, Ridge
    if target.kind == "regression":
        model = Ridge(alpha=strength).fit(z, y)
        return model.coef_[None, :], np.array([model.intercept_])
    model = LogisticRegression(C=strength, max_iter=max_iter).fit(z, y.astype(int))
    if target.kind == "binary":
        return model.coef_, model.intercept_
    weight = np.zeros((target.width, z.shape[1]))
    bias = np.full(target.width, -1e4)          # a class absent from train is never predicted
    for row, cls in enumerate(model.classes_.astype(int)):
        weight[cls], bias[cls] = (model.coef_[row], model.intercept_[row]) if len(model.classes_) > 2 else \
            ((2 * row - 1) * model.coef_[0] / 2, (2 * row - 1) * model.intercept_[0] / 2)
    return weight, bias


def fit_head(x_train, y_train, x_val, y_val, targets: list[Target], settings: dict) -> tuple[Head, dict]:
    """Per target, its linear model on the records labelled for it, the strength (logistic C, ridge
    alpha) chosen by the ``val`` score; ties go to the stronger regularisation. Returns the head and
    each target's best validation score."""
    mean = x_train.mean(axis=0).astype(np.float64)
    scale = x_train.std(axis=0).astype(np.float64)
    scale[scale == 0] = 1.0
    zt = (x_train - mean) / scale
    weights, biases, strengths, scores = [], [], {}, {}
    for k, t in enumerate(targets):
        lt, lv = np.isfinite(y_train[:, k]), np.isfinite(y_val[:, k])
        if t.kind == "regression":      # strongest regularisation first: alpha descending
            grid = sorted(settings["ridge_alpha_grid"], reverse=True)
        else:
            grid = sorted(settings["c_grid"])
        score, strength, (w, b) = choose_strength(
            grid, lambda strength: _fit_one(t, strength, zt[lt], y_train[lt, k], settings["max_iter"]),
            lambda wb: validation_score(t, y_val[lv, k], Head([t], mean, scale, *wb).outputs(x_val[lv])[t.name]))
        scores[t.name], strengths[t.name] = float(score), float(strength)
        weights.append(w)
        biases.append(b)
        log.info("target %s (%s): strength %g, validation score %.4f", t.name, t.kind, strength, score)
    return Head(list(targets), mean, scale, np.vstack(weights), np.concatenate(biases), strengths), scores


# --- thresholds and metrics ---------------------------------------------------------------------------
def parse_threshold_rule(text: str) -> tuple[str, float | None]:
    """``f1`` or ``sensitivity=0.9``."""
    if text == "f1":
        return "f1", None
    name, _, value = text.partition("=")
    try:
        if name == "sensitivity" and 0 < float(value) <= 1:
            return "sensitivity", float(value)
    except ValueError:
        pass
    raise LabelsError(f"--threshold {text!r}: f1, or sensitivity=<value in (0, 1]> such as sensitivity=0.9")


def choose_thresholds(outputs: dict, y: np.ndarray, targets: list[Target], rule: str) -> dict:
    """Each binary target's decision threshold on its probability, from the ``val`` records."""
    kind, value = parse_threshold_rule(rule)
    out = {}
    for k, t in enumerate(targets):
        if t.kind != "binary":
            continue
        lab = np.isfinite(y[:, k])
        yt, p = y[lab, k] == 1, outputs[t.name][lab]
        out[t.name] = f1_threshold(yt, p) if kind == "f1" else sensitivity_threshold(yt, p, value)
    return out


def target_metrics(target: Target, y: np.ndarray, output: np.ndarray, threshold, weights) -> dict:
    """metric -> values per row of ``weights`` for one target on its labelled records."""
    if target.kind == "binary":
        yt = y == 1
        out = {"AUROC": weighted_auroc(yt, output, weights), "AUPRC": weighted_auprc(yt, output, weights)}
        out.update(weighted_threshold_metrics(yt, output, threshold, weights))
        out["Brier"] = weighted_brier(yt, output, weights)
        return out
    if target.kind == "multiclass":
        return weighted_multiclass(y.astype(int), output, weights)
    return weighted_regression(y, output, weights)


def metric_table(outputs: dict, y: np.ndarray, targets: list[Target], thresholds: dict, split: str,
                 resamples: int = 0, seed: int = 0, level: float = 0.95) -> pd.DataFrame:
    """Tidy rows (target, metric, value, ci_low, ci_high, split, n). With ``resamples``, one
    bootstrap draw of these records serves every target and metric (paired intervals); a target's
    records without a label are left out of its values."""
    n = len(y)
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(n, np.full(n, 1.0 / n), size=resamples) if resamples and n else np.empty((0, n))
    weights = np.vstack([np.ones((1, n)), counts])
    rows = []
    for k, t in enumerate(targets):
        lab = np.isfinite(y[:, k])
        values = target_metrics(t, y[lab, k], outputs[t.name][lab], thresholds.get(t.name), weights[:, lab])
        for metric, v in values.items():
            low, high = percentile_interval(v[1:], level) if resamples else (np.nan, np.nan)
            rows.append({"target": t.name, "metric": metric, "value": float(v[0]), "ci_low": low, "ci_high": high,
                         "split": split, "n": int(lab.sum())})
    return pd.DataFrame(rows, columns=METRIC_COLUMNS)


# --- records: embeddings, matching with the labels --------------------------------------------------
def _input_fingerprint(path: Path) -> str:
    h = hashlib.sha256(str(path.resolve()).encode())
    files = sorted(path.rglob("*")) if path.is_dir() else [path]
    for f in files:
        if f.is_file():
            st = f.stat()
            h.update(f"{f.relative_to(path) if path.is_dir() else f.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()


# the modules whose code decides what a record's samples become before the encoder sees them
READING_MODULES = ("inference", "standardize", "readers", "formats", "wfdb", "leads", "encoder", "model", "resnet1d")


def embedding_cache_key(encoder_dir, ecgs, options) -> str | None:
    """A key of (encoder weights, input files, input options but the number of reading processes,
    the code that reads, standardizes and embeds); None for inputs without files."""
    import dataclasses
    if not isinstance(ecgs, (str, Path)):
        return None
    weights = Path(encoder_dir) / "encoder.safetensors"
    st = weights.stat()
    h = hashlib.sha256(f"{weights.resolve()}:{st.st_size}:{st.st_mtime_ns}".encode())
    h.update(_input_fingerprint(Path(ecgs)).encode())
    h.update(repr(dataclasses.replace(options, workers=None)).encode())
    here = Path(__file__).parent
    for module in READING_MODULES:
        h.update((here / f"{module}.py").read_bytes())
    return h.hexdigest()[:24]


def embed_cached(encoder, encoder_dir, ecgs, options, cache_dir=None, batch_size: int = 256,
                 progress: bool = False) -> pd.DataFrame:
    """``ecgfm.inference.embed_records``, read from ``cache_dir`` when these records were embedded
    by this encoder with these options before."""
    from .inference import embed_records
    key = embedding_cache_key(encoder_dir, ecgs, options) if cache_dir else None
    path = Path(cache_dir) / f"embeddings-{key}.parquet" if key else None
    if path is not None and path.exists():
        frame = pd.read_parquet(path)
        frame.attrs["format"] = json.loads(path.with_suffix(".json").read_text())["format"]
        frame.attrs["cached"] = str(path)
        log.info("embeddings from the cache %s", path)
        return frame
    frame = embed_records(encoder, ecgs, batch_size=batch_size, progress=progress, options=options)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")     # jobs may embed the same records at once
        frame.to_parquet(tmp, index=False)
        path.with_suffix(".json").write_text(json.dumps({"format": frame.attrs["format"], "input": str(ecgs)}))
        tmp.replace(path)
    return frame


def match_records(labels: pd.DataFrame, records: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(labelled records that were read, in the labels' order, with the row of ``records``;
    the excluded ones: record_id, reason). Stops when no id of the labels names a record."""
    status = records.drop_duplicates("record_id").set_index("record_id")
    found = labels["record_id"].isin(status.index)
    if not found.any():
        raise LabelsError(f"no record_id of the labels names a record of the input: labels have "
                          f"{', '.join(labels['record_id'].head(3))}, the input "
                          f"{', '.join(records['record_id'].astype(str).head(3)) or 'no records'} "
                          f"(ids are paths below the input folder without their suffix, as ecgfm embed names them)")
    excluded = [{"record_id": r, "status": "not_found", "reason": "no such record in the input"}
                for r in labels["record_id"][~found]]
    ok = found.copy()
    for i in np.flatnonzero(found.to_numpy()):
        rid = labels["record_id"].iat[i]
        if status.at[rid, "status"] != "ok":
            ok.iat[i] = False
            excluded.append({"record_id": rid, "status": "rejected", "reason": status.at[rid, "reason"]})
    position = pd.Series(np.arange(len(records)), index=records["record_id"].astype(str)).groupby(level=0).first()
    used = labels[ok.to_numpy()].copy()
    used["row"] = position.loc[used["record_id"]].to_numpy()
    return used.reset_index(drop=True), pd.DataFrame(excluded, columns=["record_id", "status", "reason"])


# --- the whole adaptation ---------------------------------------------------------------------------
@dataclass
class Adapted:
    """An adapted model in memory (and in ``out`` when saved): ``predict`` runs it."""
    encoder: object
    head: Head
    thresholds: dict
    metrics: pd.DataFrame = None
    split: pd.DataFrame = None
    excluded: pd.DataFrame = None
    info: dict = field(default_factory=dict)
    path: Path | None = None

    @property
    def targets(self) -> list[Target]:
        return self.head.targets

    def predict_embeddings(self, z: np.ndarray) -> pd.DataFrame:
        return prediction_columns(self.head.outputs(z), self.targets, self.thresholds)

    def predict(self, ecgs, fs: float | None = None, options=None, batch_size: int = 256,
                progress: bool = False) -> pd.DataFrame:
        """Predictions for ECGs: an array [n, 12, samples] in mV (at ``fs``, default the model's
        rate), or anything ``ecgfm embed`` takes (one row per record, rejected ones with their reason)."""
        if isinstance(ecgs, np.ndarray):
            return self.predict_embeddings(self.encoder.embed(ecgs, fs=fs, batch_size=batch_size))
        from .inference import InputOptions, embed_records
        frame = embed_records(self.encoder, ecgs, batch_size, progress, options or InputOptions())
        return predictions_of_frame(frame, self.predict_embeddings)


def prediction_columns(outputs: dict, targets: list[Target], thresholds: dict) -> pd.DataFrame:
    """Probabilities, ``<target>_positive`` at the thresholds, classes, regression values."""
    cols = {}
    for t in targets:
        o = outputs[t.name]
        if t.kind == "binary":
            cols[t.name] = o
            if t.name in thresholds:
                cols[f"{t.name}_positive"] = (o >= thresholds[t.name]).astype(int)
        elif t.kind == "multiclass":
            cols[t.name] = np.asarray(t.classes, dtype=object)[o.argmax(axis=1)]
            for c, cls in enumerate(t.classes):
                cols[f"{t.name}_p_{cls}"] = o[:, c]
        else:
            cols[t.name] = o
    return pd.DataFrame(cols)


def predictions_of_frame(frame: pd.DataFrame, predict) -> pd.DataFrame:
    """``predict`` (embeddings -> columns) on the ok rows of an embedding frame; rejected rows keep
    their reason and empty predictions."""
    ok = (frame["status"] == "ok").to_numpy() if len(frame) else np.zeros(0, bool)
    base = frame.drop(columns="embedding").reset_index(drop=True)
    if not ok.any():
        return base
    pred = predict(np.stack(frame["embedding"].to_numpy()[ok]))
    pred.index = np.flatnonzero(ok)
    out = pd.concat([base, pred], axis=1)
    for col in pred.columns:
        if col.endswith("_positive"):
            out[col] = out[col].astype("Int64")
    out.attrs.update(frame.attrs)
    return out


def _ecg_arrays(encoder, ecgs, options, rows_ids, fs=None):
    """The standardized ECGs of the used records, for fine-tuning (one window per record)."""
    from .inference import open_input
    if isinstance(ecgs, np.ndarray):
        return encoder.standardize(ecgs[rows_ids], fs)
    wanted = {rid: k for k, rid in enumerate(rows_ids)}
    fmt, _, outcomes = open_input(ecgs, encoder.config["preprocessing"], options)
    x = [None] * len(wanted)
    for o in outcomes:
        k = wanted.get(o.record_id)
        if k is not None and o.ecg is not None and x[k] is None:
            x[k] = o.ecg if o.ecg.ndim == 2 else o.ecg[len(o.ecg) // 2]
    return np.stack(x).astype(np.float32)


def adapt(encoder_dir, ecgs, labels, out=None, *, mode: str = "probe", targets=None, kinds: dict | None = None,
          threshold: str = "f1", seed: int = 0, settings: dict | None = None, options=None, fs: float | None = None,
          cache_dir=None, device: str = "cpu", batch_size: int = 256, progress: bool = False,
          command: str | None = None) -> Adapted:
    """Adapt the encoder of ``encoder_dir`` to ``labels`` (a labels file, or a DataFrame) on
    ``ecgs`` (anything ``ecgfm embed`` takes, or an array [n, 12, samples] in mV at ``fs`` whose
    rows are the labels' rows). Writes the model folder to ``out`` when given."""
    from .encoder import embed_array, load_encoder
    from .inference import InputOptions
    if mode not in MODES:
        raise LabelsError(f"--mode {mode!r}: probe or finetune")
    settings = {**default_settings(), **(settings or {})}
    options = options or InputOptions()
    if options.per_window:
        raise LabelsError("--per-window: a head is fitted on one embedding per record (the mean over "
                          "its windows with --window-stride alone)")
    parse_threshold_rule(threshold)
    start = time.perf_counter()
    timings = {}
    table = read_labels_file(labels) if isinstance(labels, (str, Path)) else check_labels(pd.DataFrame(labels))
    target_list = label_targets(table, targets, kinds)
    check_patient_splits(table)
    encoder = load_encoder(encoder_dir, device=device)

    t0 = time.perf_counter()
    if isinstance(ecgs, np.ndarray):
        if len(ecgs) != len(table):
            raise LabelsError(f"{len(ecgs)} ECGs but {len(table)} rows of labels: an array's rows are the labels' rows")
        records = pd.DataFrame({"record_id": table["record_id"], "status": "ok", "reason": ""})
        records["embedding"] = list(encoder.embed(ecgs, fs=fs, batch_size=batch_size))
        records.attrs["format"] = "array"
    else:
        records = embed_cached(encoder, encoder_dir, ecgs, options, cache_dir, batch_size, progress)
    timings["read_standardize_embed_s"] = time.perf_counter() - t0
    used, excluded = match_records(table, records)
    unlabelled = int(len(set(records["record_id"].astype(str)) - set(table["record_id"])))

    y = np.stack([encode_target(used, t) for t in target_list], axis=1)
    if "split" in used:
        split, split_rule = used["split"].to_numpy(str), "the labels' split column"
    else:
        groups = used["patient_id"].fillna(used["record_id"]) if "patient_id" in used else used["record_id"]
        split = assign_splits(groups, strata(y, target_list, settings["stratify_bins"]), settings["split"], seed)
        split_rule = (f"grouped by {'patient_id' if 'patient_id' in used else 'record'}, label-stratified "
                      f"{'/'.join(f'{f:g}' for f in settings['split'])}, seed {seed}")
    check_split_classes(y, split, target_list)
    if not (split == "test").any():
        raise LabelsError(f"no record in test (split: {split_rule})")
    z = np.stack(records["embedding"].to_numpy()[used["row"].to_numpy()]).astype(np.float32)
    tr, va, te = (split == "train"), (split == "val"), (split == "test")

    t0 = time.perf_counter()
    head, val_scores = fit_head(z[tr], y[tr], z[va], y[va], target_list, settings)
    timings["fit_probe_s"] = time.perf_counter() - t0
    history = None
    if mode == "finetune":
        t0 = time.perf_counter()
        x = _ecg_arrays(encoder, ecgs, options, used["record_id"].tolist() if not isinstance(ecgs, np.ndarray)
                        else used["row"].to_numpy(), fs)
        head, history = finetune_encoder(encoder, head, x, y, tr, va, target_list, settings, seed)
        z = embed_array(encoder.model, x, batch_size, encoder.device)
        val_scores = {t.name: validation_score(t, y[va, k][np.isfinite(y[va, k])],
                                               head.outputs(z[va][np.isfinite(y[va, k])])[t.name])
                      for k, t in enumerate(target_list)}
        timings["finetune_s"] = time.perf_counter() - t0

    out_va, out_te = head.outputs(z[va]), head.outputs(z[te])
    thresholds = choose_thresholds(out_va, y[va], target_list, threshold)
    metrics = pd.concat([
        metric_table(out_va, y[va], target_list, thresholds, "val"),
        metric_table(out_te, y[te], target_list, thresholds, "test", settings["bootstrap_resamples"], seed,
                     settings["ci_level"])], ignore_index=True)
    split_frame = pd.DataFrame({"record_id": used["record_id"], "split": split})
    if "patient_id" in used:
        split_frame.insert(1, "patient_id", used["patient_id"].to_numpy())
    timings["total_s"] = time.perf_counter() - start
    info = {
        "mode": mode, "seed": seed, "threshold_rule": threshold, "split_rule": split_rule,
        "targets": [{**t.to_dict(), "threshold": thresholds.get(t.name), "strength": head.strengths.get(t.name),
                     "validation_score": val_scores[t.name]} for t in target_list],
        "counts": {"labels": len(table), "used": len(used), "excluded": len(excluded),
                   "not_found": int((excluded["status"] == "not_found").sum()),
                   "rejected": int((excluded["status"] == "rejected").sum()),
                   "unlabelled_records": unlabelled, **{s: int((split == s).sum()) for s in SPLITS}},
        "provenance": _provenance(encoder, encoder_dir, ecgs, labels, records, command, options),
        "settings": settings, "timings_s": {k: round(v, 2) for k, v in timings.items()},
    }
    model = Adapted(encoder, head, thresholds, metrics, split_frame, excluded, info)
    if out is not None:
        save(model, out, encoder_dir, history=history,
             curves={"outputs": out_te, "y": y[te], "val_outputs": out_va, "y_val": y[va]})
    return model


def _provenance(encoder, encoder_dir, ecgs, labels, records, command, options) -> dict:
    import torch

    from .pretrain import git_commit
    labels_sha = hashlib.sha256(Path(labels).read_bytes()).hexdigest() if isinstance(labels, (str, Path)) else None
    return {"encoder": str(encoder_dir), "encoder_name": encoder.config.get("name"),
            "encoder_objective": encoder.config.get("objective"),
            "input": str(ecgs) if isinstance(ecgs, (str, Path)) else type(ecgs).__name__,
            "input_format": records.attrs.get("format"), "embeddings_cache": records.attrs.get("cached"),
            "input_options": {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(options).items()},
            "labels": str(labels) if isinstance(labels, (str, Path)) else "DataFrame", "labels_sha256": labels_sha,
            "command": command or " ".join(sys.argv), "torch": torch.__version__, "commit": git_commit(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


# --- fine-tuning (LP-FT) with heads of every kind ------------------------------------------------------
def finetune_encoder(encoder, head: Head, x, y, tr, va, targets: list[Target], settings: dict, seed: int):
    """Train ``encoder.model`` and a linear layer started from the probe ``head`` jointly
    (``ecgfm.finetune.train_classifier``): binary cross-entropy, cross-entropy and mean squared
    error (on standardized values) summed over the targets, early stopping on the mean ``val``
    score. Returns the fine-tuned head (on raw embeddings, the encoder changed in place) and the history."""
    import torch
    from torch import nn

    from .finetune import Classifier, device_for_training, train_classifier
    reg = {k: (np.nanmean(y[tr, k]), np.nanstd(y[tr, k]) or 1.0) for k, t in enumerate(targets)
           if t.kind == "regression"}
    ys = y.copy()
    for k, (m, s) in reg.items():
        ys[:, k] = (y[:, k] - m) / s
    slices = _slices(targets)
    out_scale = np.ones(head.weight.shape[0])
    out_shift = np.zeros(head.weight.shape[0])
    for k, (m, s) in reg.items():
        out_scale[slices[k].start], out_shift[slices[k].start] = s, m
    # the probe in raw-embedding units, its regression outputs standardized
    weight = (head.weight / head.scale) / out_scale[:, None]
    bias = (head.bias - (head.weight / head.scale) @ head.mean - out_shift) / out_scale

    torch.manual_seed(seed)                     # the head of a model trained from scratch starts from the seed
    model = Classifier(encoder.config.get("kind", "vit"), encoder.config["architecture"], head.weight.shape[0])
    model.backbone.load_state_dict(encoder.model.state_dict())

    def init_head(m, *_):
        with torch.no_grad():
            m.head.weight.copy_(torch.as_tensor(weight, dtype=m.head.weight.dtype))
            m.head.bias.copy_(torch.as_tensor(bias, dtype=m.head.bias.dtype))

    def loss_fn(logits, yb):
        total = logits.new_zeros(())
        for k, (t, s) in enumerate(zip(targets, slices)):
            mask = torch.isfinite(yb[:, k])
            if t.kind == "binary":
                part = nn.functional.binary_cross_entropy_with_logits(logits[:, s.start], torch.nan_to_num(yb[:, k]),
                                                                       reduction="none")
            elif t.kind == "multiclass":
                part = nn.functional.cross_entropy(logits[:, s], torch.nan_to_num(yb[:, k]).long(), reduction="none")
            else:
                part = (logits[:, s.start] - torch.nan_to_num(yb[:, k])) ** 2
            total = total + (part * mask).sum() / mask.sum().clamp(min=1)
        return total / len(targets)

    def score_fn(y_val, logits):
        h = Head(targets, np.zeros(logits.shape[1]), np.ones(logits.shape[1]), np.eye(logits.shape[1]),
                 np.zeros(logits.shape[1]))
        outs = h.outputs(logits)
        return float(np.mean([validation_score(t, y_val[np.isfinite(y_val[:, k]), k],
                                               outs[t.name][np.isfinite(y_val[:, k])])
                              for k, t in enumerate(targets)]))

    # a random-init encoder (a ViT, or the 1D-ResNet50) is trained from scratch (the supervised
    # baselines): full rate, random head
    pretrained = (encoder.config.get("objective") or {}).get("method") != "random"
    train_settings = {**settings["finetune"], "head_init": "probe"}
    history = train_classifier(model, x[tr], ys[tr], x[va], ys[va], train_settings, seed, pretrained=pretrained,
                               device=device_for_training(), log=log.info, loss_fn=loss_fn, score_fn=score_fn,
                               init_head=init_head)
    model.cpu()
    encoder.model.load_state_dict(model.backbone.state_dict())
    encoder.model.to(encoder.device).eval()
    w = model.head.weight.detach().double().numpy() * out_scale[:, None]
    b = model.head.bias.detach().double().numpy() * out_scale + out_shift
    d = w.shape[1]
    return Head(targets, np.zeros(d), np.ones(d), w, b, head.strengths), history


# --- the model folder ---------------------------------------------------------------------------------
def save(model: Adapted, out, encoder_dir, history=None, curves=None) -> Path:
    """The model folder: the encoder (``config.json``, ``encoder.safetensors``: the pretrained one
    for a probe, the fine-tuned one after fine-tuning), ``head.npz``, ``model.json`` (targets with
    kinds, classes, thresholds, strengths; split rule; counts; provenance), ``split.csv``,
    ``excluded.csv`` (records not found or rejected, with the reason), ``metrics.csv``, and
    ``report.md`` with its figures."""
    from safetensors.torch import save_file
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if model.info["mode"] == "finetune":
        state = {k: v.detach().cpu().contiguous() for k, v in model.encoder.model.encoder_state_dict().items()}
        save_file(state, str(out / "encoder.safetensors"))
    elif Path(encoder_dir).resolve() != out.resolve():
        shutil.copyfile(Path(encoder_dir) / "encoder.safetensors", out / "encoder.safetensors")
    (out / "config.json").write_text(json.dumps(model.encoder.config, indent=2) + "\n")
    model.head.save(out / "head.npz")
    (out / "model.json").write_text(json.dumps(model.info, indent=2, default=str) + "\n")
    model.split.to_csv(out / "split.csv", index=False)
    model.excluded.to_csv(out / "excluded.csv", index=False)
    model.metrics.to_csv(out / "metrics.csv", index=False, float_format="%.6g")
    if history is not None:
        pd.DataFrame(history).to_csv(out / "history.csv", index=False)
    from .adapt_report import write_report
    write_report(out, model, curves or {})
    model.path = out
    return out


def is_adapted(path) -> bool:
    return (Path(path) / "head.npz").exists() and (Path(path) / "model.json").exists()


def load(path, device: str = "cpu") -> Adapted:
    """An adapted model folder, ready to ``predict``."""
    from .encoder import load_encoder
    path = Path(path)
    info = json.loads((path / "model.json").read_text())
    targets = [Target.from_dict(t) for t in info["targets"]]
    head = Head.load(path / "head.npz", targets, {t["name"]: t.get("strength") for t in info["targets"]})
    thresholds = {t["name"]: t["threshold"] for t in info["targets"] if t.get("threshold") is not None}
    metrics = pd.read_csv(path / "metrics.csv") if (path / "metrics.csv").exists() else None
    return Adapted(load_encoder(path, device=device), head, thresholds, metrics, info=info, path=path)
