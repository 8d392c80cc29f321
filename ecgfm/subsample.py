"""Training subsets for the low-incidence and limited-label studies (Tables 4 and 5).

* ``case_ratio_draw``: appendix A.3. For one disease, ``size`` training ECGs of which
  ``round(ratio * size)`` are positive, drawn without replacement (e.g. 1% of 7,000: 70 MI ECGs
  and 6,930 others).
* ``stratified_fraction``: a fraction of the training records that keeps every task's case
  ratio: the draw is stratified on the combination of the task labels (16 strata for 4 tasks),
  each stratum giving its share, the remainders going to the strata with the largest fractional
  parts so that the total is exactly ``round(fraction * n)``.

Both are pure functions of their inputs and a seed, and return sorted positions.
"""
from __future__ import annotations

import zlib

import numpy as np


def seed_for(*parts) -> int:
    """A stable 32-bit seed from any printable parts (e.g. seed, task, ratio)."""
    return zlib.crc32("|".join(str(p) for p in parts).encode())


def case_ratio_draw(positive: np.ndarray, size: int, ratio: float, seed: int) -> np.ndarray:
    positive = np.asarray(positive, dtype=bool)
    n_pos = int(round(ratio * size))
    n_neg = size - n_pos
    pos, neg = np.flatnonzero(positive), np.flatnonzero(~positive)
    if n_pos > len(pos) or n_neg > len(neg):
        raise ValueError(f"case ratio {ratio} of {size}: needs {n_pos} positives and {n_neg} negatives, "
                         f"the training set has {len(pos)} and {len(neg)} "
                         f"(lower evaluation.case_ratio_train_size)")
    if n_pos == 0:
        raise ValueError(f"case ratio {ratio} of {size} draws no positive at all")
    rng = np.random.default_rng(seed)
    return np.sort(np.concatenate([rng.choice(pos, n_pos, replace=False),
                                   rng.choice(neg, n_neg, replace=False)]))


def stratified_fraction(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Positions of ``round(fraction * n)`` rows of ``labels`` [n, tasks], stratified on label sets."""
    labels = np.asarray(labels, dtype=bool)
    n = len(labels)
    total = int(round(fraction * n))
    key = labels.astype(np.int64) @ (1 << np.arange(labels.shape[1]))
    strata, counts = np.unique(key, return_counts=True)
    share = fraction * counts
    take = np.floor(share).astype(int)
    rng = np.random.default_rng(seed)
    remainder = total - take.sum()
    if remainder > 0:   # largest fractional parts first, ties in random order
        order = np.lexsort((rng.random(len(strata)), -(share - take)))
        take[order[:remainder]] += 1
    chosen = [rng.choice(np.flatnonzero(key == s), k, replace=False) for s, k in zip(strata, take)]
    return np.sort(np.concatenate(chosen))
