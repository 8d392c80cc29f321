"""Risk decomposition of a linear probe (Dubois, Hashimoto and Liang 2023; the paper's Table 2).

Risk is ``1 - AUROC`` of a task. With a supervised encoder ``S`` and an SSL encoder ``E`` of the
same architecture, the training folds ``T`` (1-8), a held-out part ``H`` of ``T`` the size of the
test fold (whole patients), and the test fold ``F`` (10):

* approximation           = risk on T of a probe fit on S's features of T
* representation usability = risk on T of a probe fit on E's features of T   - approximation
* probe generalization     = risk on H of a probe fit on E's features of T\\H - risk on T (E)
* encoder generalization   = risk on F of a probe fit on E's features of T   - risk on H
* total                    = risk on F (E) = the sum of the four

Every probe's C is chosen on the validation fold (9), as in linear probing. For the encoder
term to mean what Dubois et al. mean, E must have seen T (unlabeled) during pretraining: the
workflow uses the pretraining variant whose corpus includes PTB-XL's training folds.
"""
from __future__ import annotations

import numpy as np

from .metrics import auroc
from .probe import fit_probe

COMPONENTS = ("approximation", "usability", "probe_generalization", "encoder_generalization", "total")


def heldout_patients(patient_ids, size: int, seed: int) -> np.ndarray:
    """A boolean mask of whole patients, in random order, until at least ``size`` records."""
    patient_ids = np.asarray(patient_ids)
    unique = np.unique(patient_ids)
    order = np.random.default_rng(seed).permutation(len(unique))
    counts = dict(zip(*np.unique(patient_ids, return_counts=True)))
    chosen, n = [], 0
    for i in order:
        if n >= size:
            break
        chosen.append(unique[i])
        n += counts[unique[i]]
    return np.isin(patient_ids, chosen)


def _risk(y, scores):
    return 1.0 - auroc(y, scores)


def decompose(sup: np.ndarray, ssl: np.ndarray, y: np.ndarray, split: np.ndarray, heldout: np.ndarray,
              c_grid, max_iter: int = 1000) -> list[dict]:
    """Risk components per task (columns of ``y``). ``split``: 'train' / 'validation' / 'test'
    per record; ``heldout``: a mask inside the training records. Returns one dict per task."""
    y = np.asarray(y, bool)
    tr, va, te = split == "train", split == "validation", split == "test"
    if np.any(heldout & ~tr):
        raise ValueError("the held-out part must lie inside the training records")
    rest = tr & ~heldout
    p_sup = fit_probe(sup[tr], y[tr], sup[va], y[va], c_grid, max_iter)
    p_ssl = fit_probe(ssl[tr], y[tr], ssl[va], y[va], c_grid, max_iter)
    p_rest = fit_probe(ssl[rest], y[rest], ssl[va], y[va], c_grid, max_iter)
    s_sup_tr, s_ssl_tr = p_sup.scores(sup[tr]), p_ssl.scores(ssl[tr])
    s_held, s_test = p_rest.scores(ssl[heldout]), p_ssl.scores(ssl[te])
    out = []
    for k in range(y.shape[1]):
        approx = _risk(y[tr, k], s_sup_tr[:, k])
        train_ssl = _risk(y[tr, k], s_ssl_tr[:, k])
        held = _risk(y[heldout, k], s_held[:, k])
        test = _risk(y[te, k], s_test[:, k])
        out.append({"approximation": approx, "usability": train_ssl - approx,
                    "probe_generalization": held - train_ssl, "encoder_generalization": test - held,
                    "total": test})
    return out
