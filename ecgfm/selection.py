"""The paper's rule for the best architecture of each SSL method (section 4.1, Figures 3-4).

Figures 3-4 draw, per task and per factor (patch size, depth, width), one box for each value of
the factor: the AUROCs of the method's models having that value (every value of the other two
factors; a model that did not train, the paper's OOM, is absent). The paper takes "the median
AUROC as the primary performance metric and the range between the minimum and maximum AUROC as
the secondary stability metric" and picks the value with "the highest median AUROC across most
tasks". Our reading (``task_medians``): per factor value, the mean over tasks of its boxes'
medians; the highest wins, a tie going to the smaller mean range (the whiskers), then to the
smaller value. The best architecture is the combination of the three winners.

Fed the paper's own Table 8, this reading gives the paper's three choices, CL (250, 2, 1024),
GL (60, 2, 512) and HL (60, 2, 512); the other readings below do not (tested; the choice of each
is in docs/evaluation.md). We compute it from *validation* results only, never the test fold.
"""
from __future__ import annotations

import pandas as pd

FACTORS = ("patch", "depth", "width")
READINGS = ("task_medians", "pooled_median", "task_vote", "criteria_median")


def _winner(stats: pd.DataFrame, factor: str, score: str) -> int:
    """The value with the highest ``score``, then the smaller ``range``, then the smaller value."""
    stats = stats.reset_index().sort_values([score, "range", factor], ascending=[False, True, True])
    return int(stats[factor].iloc[0])


def _boxes(rows: pd.DataFrame, factor: str, by) -> pd.DataFrame:
    stats = rows.groupby(by)["value"].agg(["median", "min", "max"])
    return stats.assign(range=stats["max"] - stats["min"])


def best_value(rows: pd.DataFrame, factor: str, reading: str = "task_medians") -> int:
    """The winning value of one factor from one method's AUROC rows (columns task, value, factors).

    * ``task_medians`` (the rule): the mean over tasks of each task's box median; ties by the
      mean box range;
    * ``pooled_median``: one box per value pooling every task, highest median, then smaller range;
    * ``task_vote``: each task's box with the highest median (then smaller range) gets a vote; the
      value with most votes, a tied vote decided by ``pooled_median`` among the tied values;
    * ``criteria_median``: as ``pooled_median`` on each model's criteria (rows with task ``all``).
    """
    rows = rows.dropna(subset=["value"])
    if reading == "task_medians":
        boxes = _boxes(rows, factor, ["task", factor])
        return _winner(boxes.groupby(factor)[["median", "range"]].mean(), factor, "median")
    if reading in ("pooled_median", "criteria_median"):
        return _winner(_boxes(rows, factor, factor), factor, "median")
    if reading == "task_vote":
        votes = pd.Series([_winner(_boxes(g, factor, factor), factor, "median") for _, g in rows.groupby("task")])
        counts = votes.value_counts()
        tied = counts[counts == counts.max()].index
        return int(tied[0]) if len(tied) == 1 else best_value(rows[rows[factor].isin(tied)], factor, "pooled_median")
    raise ValueError(f"unknown selection reading {reading!r}; one of {', '.join(READINGS)}")


def choose(rows: pd.DataFrame, reading: str = "task_medians") -> dict[str, dict]:
    """One row per (method, architecture, task) with ``value`` -> {method: {patch, depth, width, model}}."""
    out = {}
    for method, group in rows.groupby("method"):
        choice = {f: best_value(group, f, reading) for f in FACTORS}
        choice["model"] = f"{method}_p{choice['patch']}_d{choice['depth']}_e{choice['width']}"
        out[str(method)] = choice
    return out


def best_architectures(rows: pd.DataFrame, reading: str = "task_medians") -> dict[str, dict]:
    """Linear-probe result rows -> {method: {patch, depth, width, model}}, from validation AUROC."""
    metrics = ["AUROC", "AUPRC"] if reading == "criteria_median" else ["AUROC"]
    use = rows[(rows["protocol"] == "linear_probe") & (rows["split"] == "validation")
               & rows["metric"].isin(metrics)]
    if use.empty:
        raise ValueError("no validation AUROC rows of linear probing to choose architectures from")
    trained = set(use.dropna(subset=["value"])["model"])
    if reading == "criteria_median":          # the paper's criteria: the sum of the 4 AUROCs and 4 AUPRCs
        use = (use.groupby(["method", *FACTORS])["value"].sum(min_count=2 * use["task"].nunique())
               .reset_index().assign(task="all"))
    out = choose(use, reading)
    for method, choice in out.items():
        if choice["model"] not in trained:
            raise ValueError(f"{method}: the winners of each factor make {choice['model']}, which has no "
                             f"validation result (it did not train)")
    return out


def pinned_architectures(pinned: dict, pretrained) -> dict[str, dict]:
    """``evaluation.selection: paper``: the architectures ``pinned`` ({method: [patch, depth,
    width]}, the paper's), each checked to be one of the ``pretrained`` models."""
    out = {}
    for method, (patch, depth, width) in pinned.items():
        name = f"{method}_p{patch}_d{depth}_e{width}"
        if name not in pretrained:
            raise ValueError(f"evaluation.paper_architectures.{method}: {name} is not one of the pretrained "
                             f"models ({len(pretrained)}: pretrain.patch_sizes/depths/widths or pretrain.models)")
        out[method] = {"patch": patch, "depth": depth, "width": width, "model": name}
    return out
