"""Linear probing: a frozen encoder's cached embeddings + an L2-regularised logistic regression.

* Embeddings: the mean of the encoder's patch tokens after its final norm (``model.embed``),
  computed once per encoder for every labeled PTB-XL record and cached as HDF5
  (``embedding`` [n, width] float32, ``record_id``), rows in the order of ``labels.parquet``.
* The probe: features standardized with the training records' mean and deviation, then one
  logistic regression per task. Its inverse strength ``C`` is chosen from ``c_grid`` by AUROC on
  the validation records only: ``fit_probe`` is never given the test records.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from .metrics import auroc


def write_embeddings(path, embeddings: np.ndarray, record_ids, model_name: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with h5py.File(tmp, "w") as f:
        f.create_dataset("embedding", data=np.asarray(embeddings, dtype=np.float32))
        f.create_dataset("record_id", data=np.asarray([str(r) for r in record_ids], dtype=object),
                         dtype=h5py.string_dtype())
        f.attrs["model"] = model_name
    tmp.replace(path)


def read_embeddings(path, record_ids=None) -> np.ndarray:
    """The cached embeddings; with ``record_ids``, checked to be those records in that order."""
    with h5py.File(path, "r") as f:
        emb = f["embedding"][:]
        ids = f["record_id"].asstr()[:]
    if record_ids is not None and (len(ids) != len(record_ids) or np.any(ids != np.asarray(record_ids, dtype=str))):
        raise ValueError(f"{path}: cached embeddings are of other records than labels.parquet; delete it to recompute")
    return emb


@dataclass
class Probe:
    mean: np.ndarray
    scale: np.ndarray
    models: list          # one fitted LogisticRegression per task
    c: list               # the chosen C per task
    validation_auroc: list

    def scores(self, features: np.ndarray) -> np.ndarray:
        z = (features - self.mean) / self.scale
        return np.stack([m.decision_function(z) for m in self.models], axis=1)


def _logistic(c: float, max_iter: int):
    from sklearn.linear_model import LogisticRegression
    return LogisticRegression(C=c, max_iter=max_iter)


def fit_probe(x_train, y_train, x_val, y_val, c_grid, max_iter: int = 1000) -> Probe:
    """One logistic regression per task (columns of ``y_*``), C chosen on the validation AUROC."""
    y_train, y_val = np.asarray(y_train, bool), np.asarray(y_val, bool)
    mean = x_train.mean(axis=0)
    scale = x_train.std(axis=0)
    scale[scale == 0] = 1.0
    zt, zv = (x_train - mean) / scale, (x_val - mean) / scale
    models, chosen, val_scores = [], [], []
    for k in range(y_train.shape[1]):
        score, c, model = choose_strength(sorted(c_grid), lambda c: _logistic(c, max_iter).fit(zt, y_train[:, k]),
                                          lambda model: auroc(y_val[:, k], model.decision_function(zv)))
        val_scores.append(score)
        chosen.append(c)
        models.append(model)
    return Probe(mean, scale, models, chosen, val_scores)


def choose_strength(grid, fit, score):
    """(best validation score, its strength, its fitted model) over ``grid`` in the order given,
    strongest regularisation first: a tie keeps the earlier, more regularised one. ``fit(strength)``
    fits on the training records, ``score(model)`` scores on the validation ones (higher is better).
    The PTB-XL probe (C ascending) and ``ecgfm.adapt``'s heads of every kind choose this way."""
    best = None
    for strength in grid:
        model = fit(strength)
        value = score(model)
        if best is None or value > best[0]:
            best = (value, strength, model)
    return best
