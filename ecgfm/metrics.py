"""AUROC, AUPRC (average precision) and their bootstrap confidence intervals.

Both metrics are written for *weighted* samples, so that a bootstrap resample is a vector of
counts over the original records instead of a copy of them: ``B`` resamples of ``n`` records are
one ``[B, n]`` count matrix and one vectorised pass, with the records sorted once. With integer
weights the values equal scikit-learn's ``roc_auc_score`` and ``average_precision_score`` on the
records repeated that many times (tested).

* AUROC: probability that a positive scores above a negative, ties counting one half.
* AUPRC: average precision, sum over distinct thresholds (descending) of
  (recall_k - recall_{k-1}) * precision_k; scikit-learn's definition (no interpolation).
"""
from __future__ import annotations

import numpy as np

METRICS = ("AUROC", "AUPRC")


def _groups(y_score: np.ndarray):
    """Order sorting the scores descending, and the start of each run of tied scores."""
    order = np.argsort(-y_score, kind="mergesort")
    s = y_score[order]
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    return order, starts


def _per_threshold(y_true, y_score, weights):
    """Weighted positives and negatives at each distinct score (descending): [B, G] each."""
    y = np.asarray(y_true).astype(bool)
    order, starts = _groups(np.asarray(y_score, dtype=np.float64))
    w = np.atleast_2d(np.asarray(weights, dtype=np.float64))[:, order]
    pos = np.add.reduceat(w * y[order], starts, axis=1)
    neg = np.add.reduceat(w * ~y[order], starts, axis=1)
    return pos, neg


def weighted_auroc(y_true, y_score, weights) -> np.ndarray:
    """AUROC per row of ``weights`` ([B, n] or [n]); NaN where a row has no positive or no negative."""
    pos, neg = _per_threshold(y_true, y_score, weights)
    # descending order: negatives scored strictly below a group are those in later groups
    neg_below = neg.sum(axis=1, keepdims=True) - np.cumsum(neg, axis=1)
    num = (pos * (neg_below + 0.5 * neg)).sum(axis=1)
    den = pos.sum(axis=1) * neg.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def weighted_auprc(y_true, y_score, weights) -> np.ndarray:
    """Average precision per row of ``weights``; NaN where a row has no positive."""
    pos, neg = _per_threshold(y_true, y_score, weights)
    tp, fp = np.cumsum(pos, axis=1), np.cumsum(neg, axis=1)
    total = tp[:, -1:]
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(tp + fp > 0, tp / np.where(tp + fp > 0, tp + fp, 1), 0.0)
        ap = (pos / np.where(total > 0, total, 1) * precision).sum(axis=1)
    return np.where(total[:, 0] > 0, ap, np.nan)


def auroc(y_true, y_score) -> float:
    return float(weighted_auroc(y_true, y_score, np.ones(len(y_true)))[0])


def auprc(y_true, y_score) -> float:
    return float(weighted_auprc(y_true, y_score, np.ones(len(y_true)))[0])


def percentile_interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """The percentile interval of bootstrap values, leaving out resamples where the metric is undefined."""
    finite = np.asarray(values, float)
    finite = finite[np.isfinite(finite)]
    if not len(finite):
        return float("nan"), float("nan")
    alpha = (1 - level) / 2
    low, high = np.quantile(finite, [alpha, 1 - alpha])
    return float(low), float(high)


def bootstrap_ci(y_true, y_score, resamples: int, seed: int, level: float = 0.95) -> dict:
    """Point value and percentile bootstrap interval of AUROC and AUPRC over records.

    Resamples without a positive or a negative are left out of the percentiles (there are none
    at the sizes of PTB-XL's fold 10). Returns {metric: (value, low, high)}.
    """
    y_true = np.asarray(y_true).astype(bool)
    n = len(y_true)
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(n, np.full(n, 1.0 / n), size=resamples) if resamples else np.empty((0, n))
    out = {}
    for name, fn in (("AUROC", weighted_auroc), ("AUPRC", weighted_auprc)):
        value = float(fn(y_true, y_score, np.ones(n))[0])
        low, high = percentile_interval(fn(y_true, y_score, counts), level) if resamples else (np.nan, np.nan)
        out[name] = (value, float(low), float(high))
    return out


def paired_auroc_difference(y_true, scores_a, scores_b, resamples: int, seed: int, level: float = 0.95
                            ) -> tuple[float, float, float]:
    """Mean over tasks (columns) of AUROC(a) - AUROC(b) on the same records, with a paired
    percentile bootstrap interval: each resample draws the records once, for both models and every
    task. Returns (difference, low, high)."""
    y_true = np.asarray(y_true).astype(bool)
    n, tasks = y_true.shape
    counts = np.random.default_rng(seed).multinomial(n, np.full(n, 1.0 / n), size=resamples) \
        if resamples else np.empty((0, n))
    weights = np.vstack([np.ones((1, n)), counts])
    diff = np.mean([weighted_auroc(y_true[:, k], scores_a[:, k], weights)
                    - weighted_auroc(y_true[:, k], scores_b[:, k], weights) for k in range(tasks)], axis=0)
    if not resamples:
        return float(diff[0]), float("nan"), float("nan")
    return (float(diff[0]), *percentile_interval(diff[1:], level))


def f1_threshold(y_true, y_score) -> float:
    """The score threshold (predict positive at or above it) with the highest F1 on these
    records; ties go to the higher threshold."""
    y = np.asarray(y_true).astype(bool)
    order = np.argsort(-np.asarray(y_score, dtype=np.float64), kind="mergesort")
    s, yy = np.asarray(y_score, dtype=np.float64)[order], y[order]
    last = np.r_[s[1:] != s[:-1], True]                  # the last record of each run of equal scores
    tp, fp = np.cumsum(yy)[last], np.cumsum(~yy)[last]
    f1 = 2 * tp / np.maximum(2 * tp + fp + (y.sum() - tp), 1)
    return float(s[last][int(np.argmax(f1))])


def criteria(values: dict) -> float:
    """The paper's "criteria": the sum of the four tasks' AUROCs and AUPRCs."""
    return float(sum(values.values()))


def macro_auroc_ci(y_true, y_score, resamples: int, seed: int, level: float = 0.95, max_draws: int = 20
                   ) -> tuple[float, float, float]:
    """Macro AUROC over the columns (classes) of ``y_true`` [n, k] and ``y_score`` [n, k], with a
    percentile bootstrap interval over records: each resample draws the records once for every
    class, and only resamples in which every class keeps a positive and a negative count (as the
    PTB-XL benchmark draws them, redrawing until ``resamples`` such draws or ``max_draws`` times
    as many in all). Every column must have a positive and a negative. Returns (value, low, high)."""
    y_true = np.asarray(y_true).astype(bool)
    n, k = y_true.shape
    if not (y_true.any(axis=0).all() and (~y_true).any(axis=0).all()):
        raise ValueError("macro AUROC: every class needs a positive and a negative record")
    ones = np.ones(n)
    value = float(np.mean([weighted_auroc(y_true[:, c], y_score[:, c], ones)[0] for c in range(k)]))
    if not resamples:
        return value, float("nan"), float("nan")
    rng, kept, drawn = np.random.default_rng(seed), [], 0
    while sum(len(b) for b in kept) < resamples and drawn < max_draws * resamples:
        counts = rng.multinomial(n, np.full(n, 1.0 / n), size=resamples)
        drawn += resamples
        per_class = np.stack([weighted_auroc(y_true[:, c], y_score[:, c], counts) for c in range(k)])
        macro = per_class.mean(axis=0)
        kept.append(macro[np.isfinite(macro)])
    return (value, *percentile_interval(np.concatenate(kept)[:resamples], level))

# --- metrics of an adapted model (ecgfm.adapt), weighted like AUROC above ----------------------------
# Each takes the records' weights ([B, n] bootstrap counts, or [n]) and returns one value per row,
# so that one count matrix gives every metric of every target the same resampled records (paired).
def _rows(weights) -> np.ndarray:
    return np.atleast_2d(np.asarray(weights, dtype=np.float64))


def _ratio(num, den):
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def weighted_confusion(y_true, predicted, weights):
    """Weighted true positives, false positives, false negatives and true negatives per row."""
    y, p, w = np.asarray(y_true).astype(bool), np.asarray(predicted).astype(bool), _rows(weights)
    return w @ (y & p), w @ (~y & p), w @ (y & ~p), w @ (~y & ~p)


def weighted_threshold_metrics(y_true, probability, threshold: float, weights) -> dict:
    """Sensitivity, specificity and F1 when predicting positive at ``probability >= threshold``."""
    tp, fp, fn, tn = weighted_confusion(y_true, np.asarray(probability) >= threshold, weights)
    return {"sensitivity": _ratio(tp, tp + fn), "specificity": _ratio(tn, tn + fp),
            "F1": _ratio(2 * tp, 2 * tp + fp + fn)}


def weighted_brier(y_true, probability, weights) -> np.ndarray:
    w = _rows(weights)
    return _ratio(w @ (np.asarray(probability, float) - np.asarray(y_true, float)) ** 2, w.sum(axis=1))


def weighted_multiclass(y_true, probabilities, weights) -> dict:
    """Macro AUROC (each class against the rest, over the classes present), accuracy and balanced
    accuracy (mean recall over the classes present) of class indices ``y_true`` [n] and
    probabilities [n, classes]."""
    y, p, w = np.asarray(y_true).astype(int), np.asarray(probabilities, float), _rows(weights)
    predicted = p.argmax(axis=1)
    aurocs, recalls, present = [], [], []
    for k in range(p.shape[1]):
        is_k = y == k
        aurocs.append(weighted_auroc(is_k, p[:, k], w))
        support = w @ is_k
        recalls.append(_ratio(w @ (is_k & (predicted == k)), support))
        present.append(support > 0)
    aurocs, recalls, present = np.array(aurocs), np.array(recalls), np.array(present)
    defined = np.isfinite(aurocs)
    with np.errstate(invalid="ignore", divide="ignore"):
        macro = np.where(defined.any(axis=0), np.where(defined, aurocs, 0.0).sum(axis=0) / defined.sum(axis=0), np.nan)
        balanced = np.nansum(np.where(present, recalls, 0.0), axis=0) / np.maximum(present.sum(axis=0), 1)
    return {"macro_AUROC": macro, "accuracy": _ratio(w @ (predicted == y), w.sum(axis=1)),
            "balanced_accuracy": balanced}


def weighted_regression(y_true, predicted, weights) -> dict:
    """MAE, RMSE, R² (1 - residual / total sum of squares about the weighted mean) and Pearson r."""
    y, f, w = np.asarray(y_true, float), np.asarray(predicted, float), _rows(weights)
    total = w.sum(axis=1)
    err = f - y
    mean_y, mean_f = _ratio(w @ y, total), _ratio(w @ f, total)
    ss_res = w @ err ** 2
    dy, df = y[None, :] - mean_y[:, None], f[None, :] - mean_f[:, None]
    ss_tot, ss_f, cov = (w * dy ** 2).sum(axis=1), (w * df ** 2).sum(axis=1), (w * dy * df).sum(axis=1)
    return {"MAE": _ratio(w @ np.abs(err), total), "RMSE": np.sqrt(_ratio(ss_res, total)),
            "R2": 1 - _ratio(ss_res, ss_tot), "pearson_r": _ratio(cov, np.sqrt(ss_tot * ss_f))}


def sensitivity_threshold(y_true, y_score, sensitivity: float) -> float:
    """The highest score threshold (predict positive at or above it) whose sensitivity on these
    records is at least ``sensitivity``."""
    y = np.asarray(y_true).astype(bool)
    positives = np.sort(np.asarray(y_score, dtype=np.float64)[y])[::-1]
    if not len(positives):
        raise ValueError("no positive record to set a sensitivity threshold on")
    needed = int(np.ceil(sensitivity * len(positives) - 1e-9))
    return float(positives[max(needed, 1) - 1])
