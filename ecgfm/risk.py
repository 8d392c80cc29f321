"""Risk decomposition of a linear probe (the paper's Table 2), as Dubois, Hashimoto and Liang define
it in "Evaluating Self-Supervised Learning via Risk Decomposition" (ICML 2023).

Their code (github YannDubs/SSL-Risk-Decomposition) is the reference for what each term is:
``utils/collect_results.py`` ``make_risk_decomposition`` walks the decomposition table
(``sup_train_train`` -> ``train_train`` -> ``train-cmplmnt-ntest_train-sbst-ntest`` ->
``train_test``), and ``main_fullshot.py`` with ``utils/tune_hyperparam.py`` tunes the
hyperparameters of the train-train probes on the training risk itself, so that approximation and
usability are the lowest risk a linear probe reaches on the training data.

With a supervised encoder ``S`` and an SSL encoder ``E`` of the same architecture, the training
folds ``T`` (1-8), a held-out part ``H`` of ``T`` about the size of the test fold (whole patients,
stratified by their labels), the validation fold (9) and the test fold ``F`` (10):

* approximation            = R_T(S): risk on T of the best probe on S's features of T
* representation usability = R_T(E) - R_T(S), with R_T(E) the best probe on E's features of T
* probe generalization     = R_H(E) - R_T(E): R_H of a probe fit on T \\ H (C chosen on fold 9)
* encoder generalization   = R_F(E) - R_H(E): R_F of the probe fit on T (C chosen on fold 9),
                             the very probe linear probing reports
* total                    = R_F(E), and the four terms add up to it exactly.

"Best probe" means: C chosen from ``train_c_grid`` (reaching weak regularization) by the risk on
T itself, as the reference does. Notes on what is measured:

* the risk is ``1 - AUROC`` (the probability that a random positive scores below a random
  negative, ties one half), not the reference's 0-1 error; the paper does not say which it used
  (its Table 2 totals are not 1 - its Table 1 AUROCs);
* the decomposed SSL encoder is the variant pretrained with folds 1-8 in its corpus (unlabeled):
  encoder generalization assumes E has seen T;
* approximation is an upper bound of the architecture's when S is early-stopped (it is: on
  fold 9), since a longer-trained S would fit T better;
* folds 9-10 carry cleaner labels than folds 1-8 (PTB-XL's validated folds), which biases encoder
  generalization (test minus held-out) downward.

Uncertainty: each component gets a paired bootstrap 95% interval, resampling the records of T
(and with them H, which lies inside T) and of F jointly for every risk, so each resample keeps the
sum identity; the probes are fixed (the intervals reflect the finite evaluation sets, not the
refitting of probes). The stronger estimate (``decompose_over_folds``) takes each training fold in
turn as H and reports the components per fold, whose mean and spread Table 2 shows.
"""
from __future__ import annotations

import numpy as np

from .metrics import weighted_auroc
from .probe import Probe, fit_probe

COMPONENTS = ("approximation", "usability", "probe_generalization", "encoder_generalization", "total")


def heldout_patients(patient_ids, size: int, seed: int, labels=None) -> np.ndarray:
    """A boolean mask of whole patients with at least ``size`` records. With ``labels``
    ([n, tasks]), patients are stratified by their label pattern (a task is positive for a patient
    when any of their records is): each pattern contributes its share of ``size``."""
    patient_ids = np.asarray(patient_ids)
    unique, inverse, counts = np.unique(patient_ids, return_inverse=True, return_counts=True)
    rng = np.random.default_rng(seed)
    if labels is None:
        strata = np.zeros(len(unique), int)
    else:
        per_patient = np.zeros((len(unique), np.asarray(labels).shape[1]), bool)
        np.logical_or.at(per_patient, inverse, np.asarray(labels, bool))
        strata = per_patient @ (1 << np.arange(per_patient.shape[1]))
    chosen = np.zeros(len(unique), bool)
    total = counts.sum()
    for stratum in np.unique(strata):
        members = rng.permutation(np.flatnonzero(strata == stratum))
        quota = size * counts[members].sum() / total
        taken = np.cumsum(counts[members])
        n_take = int(np.searchsorted(taken, quota - 1e-9)) + 1 if quota > 0 else 0
        chosen[members[: min(n_take, len(members))]] = True
    return chosen[inverse]


def best_training_probe(x, y, train_c_grid, max_iter: int = 1000) -> Probe:
    """The probe with the lowest training risk: C chosen on the training data itself."""
    return fit_probe(x, y, x, y, train_c_grid, max_iter)


def _risks(y, scores: dict, masks: dict, weights: np.ndarray) -> dict:
    """Risk (1 - AUROC) of each score set on its records, per row of ``weights`` [B, n]."""
    return {name: 1.0 - weighted_auroc(y[masks[name]], s, weights[:, masks[name]])
            for name, s in scores.items()}


def _components(r: dict) -> dict:
    return {"approximation": r["sup_T"], "usability": r["ssl_T"] - r["sup_T"],
            "probe_generalization": r["ssl_H"] - r["ssl_T"], "encoder_generalization": r["ssl_F"] - r["ssl_H"],
            "total": r["ssl_F"]}


def paired_bootstrap_weights(masks_resampled: list[np.ndarray], n: int, resamples: int, seed: int) -> np.ndarray:
    """[resamples, n] counts: each mask's records resampled with replacement (multinomial over
    them), all else 0. Records in no mask keep weight 0."""
    rng = np.random.default_rng(seed)
    weights = np.zeros((resamples, n))
    for mask in masks_resampled:
        idx = np.flatnonzero(mask)
        weights[:, idx] = rng.multinomial(len(idx), np.full(len(idx), 1.0 / len(idx)), size=resamples)
    return weights


def decompose(sup: np.ndarray, ssl: np.ndarray, y: np.ndarray, split: np.ndarray, heldout: np.ndarray,
              c_grid, train_c_grid=None, max_iter: int = 1000, resamples: int = 0, seed: int = 0,
              level: float = 0.95, chunk: int = 100) -> list[dict]:
    """Risk components per task (columns of ``y``). ``split``: 'train' / 'validation' / 'test'
    per record; ``heldout``: a mask inside the training records. Returns one dict per task:
    ``{component: value}`` plus ``{component}_ci`` (low, high) when ``resamples``."""
    y = np.asarray(y, bool)
    tr, va, te = split == "train", split == "validation", split == "test"
    if np.any(heldout & ~tr):
        raise ValueError("the held-out part must lie inside the training records")
    train_c_grid = c_grid if train_c_grid is None else train_c_grid
    rest = tr & ~heldout
    best_sup = best_training_probe(sup[tr], y[tr], train_c_grid, max_iter)
    best_ssl = best_training_probe(ssl[tr], y[tr], train_c_grid, max_iter)
    p_test = fit_probe(ssl[tr], y[tr], ssl[va], y[va], c_grid, max_iter)
    p_rest = fit_probe(ssl[rest], y[rest], ssl[va], y[va], c_grid, max_iter)
    masks = {"sup_T": tr, "ssl_T": tr, "ssl_H": heldout, "ssl_F": te}
    all_scores = {"sup_T": best_sup.scores(sup[tr]), "ssl_T": best_ssl.scores(ssl[tr]),
                  "ssl_H": p_rest.scores(ssl[heldout]), "ssl_F": p_test.scores(ssl[te])}
    tasks = [{name: s[:, k] for name, s in all_scores.items()} for k in range(y.shape[1])]
    draws = [{name: [] for name in COMPONENTS} for _ in tasks]
    for start in range(0, resamples, chunk):      # a chunk of resamples at a time bounds the memory
        weights = paired_bootstrap_weights([tr, te], len(y), min(chunk, resamples - start), seed + start)
        for k, scores in enumerate(tasks):
            for name, v in _components(_risks(y[:, k], scores, masks, weights)).items():
                draws[k][name].append(v)
    out = []
    alpha = (1 - level) / 2
    for k, scores in enumerate(tasks):
        point = _components(_risks(y[:, k], scores, masks, np.ones((1, len(y)))))
        row = {name: float(v[0]) for name, v in point.items()}
        for name, parts in (draws[k].items() if resamples else ()):
            values = np.concatenate(parts)
            values = values[np.isfinite(values)]
            row[f"{name}_ci"] = tuple(float(q) for q in np.quantile(values, [alpha, 1 - alpha]))
        out.append(row)
    return out


def decompose_over_folds(sup, ssl, y, split, folds, c_grid, train_c_grid=None, max_iter: int = 1000
                         ) -> dict[int, list[dict]]:
    """The stronger estimate: each training fold in turn as the held-out set (PTB-XL's folds are
    patient-wise and stratified). ``folds``: the fold of every record. Returns {fold: per-task
    components}; approximation, usability and total do not depend on the fold."""
    y = np.asarray(y, bool)
    tr, va, te = split == "train", split == "validation", split == "test"
    train_c_grid = c_grid if train_c_grid is None else train_c_grid
    best_sup = best_training_probe(sup[tr], y[tr], train_c_grid, max_iter)
    best_ssl = best_training_probe(ssl[tr], y[tr], train_c_grid, max_iter)
    p_test = fit_probe(ssl[tr], y[tr], ssl[va], y[va], c_grid, max_iter)
    fixed = {"sup_T": best_sup.scores(sup[tr]), "ssl_T": best_ssl.scores(ssl[tr]), "ssl_F": p_test.scores(ssl[te])}
    out = {}
    for fold in sorted(np.unique(np.asarray(folds)[tr])):
        held = tr & (np.asarray(folds) == fold)
        rest = tr & ~held
        p_rest = fit_probe(ssl[rest], y[rest], ssl[va], y[va], c_grid, max_iter)
        masks = {"sup_T": tr, "ssl_T": tr, "ssl_H": held, "ssl_F": te}
        scores = {**fixed, "ssl_H": p_rest.scores(ssl[held])}
        per_task = []
        for k in range(y.shape[1]):
            r = _risks(y[:, k], {n: s[:, k] for n, s in scores.items()}, masks, np.ones((1, len(y))))
            per_task.append({name: float(v[0]) for name, v in _components(r).items()})
        out[int(fold)] = per_task
    return out
