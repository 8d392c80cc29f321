"""The paper's rule for the best architecture of each SSL method (section 4.1, Figures 3-4).

For each factor (patch size, depth, width) separately, the AUROCs of every model of the method
having that value (all tasks, all values of the other factors) are pooled; the value with the
highest median wins, a tie going to the smaller range (max - min, the figures' whiskers), then
to the smaller value. The best architecture is the combination of the three winners. The paper
reads this off its figures; we compute it from *validation* results only, never the test fold.
"""
from __future__ import annotations

import pandas as pd

FACTORS = ("patch", "depth", "width")


def best_value(rows: pd.DataFrame, factor: str) -> int:
    stats = rows.groupby(factor)["value"].agg(["median", "min", "max"])
    stats["range"] = stats["max"] - stats["min"]
    stats = stats.reset_index().sort_values(["median", "range", factor], ascending=[False, True, True])
    return int(stats[factor].iloc[0])


def best_architectures(rows: pd.DataFrame) -> dict[str, dict]:
    """Linear-probe result rows -> {method: {patch, depth, width, model}}, from validation AUROC."""
    use = rows[(rows["protocol"] == "linear_probe") & (rows["split"] == "validation") & (rows["metric"] == "AUROC")]
    if use.empty:
        raise ValueError("no validation AUROC rows of linear probing to choose architectures from")
    out = {}
    for method, group in use.groupby("method"):
        choice = {f: best_value(group, f) for f in FACTORS}
        choice["model"] = f"{method}_p{choice['patch']}_d{choice['depth']}_e{choice['width']}"
        out[str(method)] = choice
    return out
