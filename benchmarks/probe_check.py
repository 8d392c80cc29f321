"""Linear-probe AUROC of a pretrained encoder vs a random-init encoder of the same architecture.

    python benchmarks/probe_check.py --model results/demo/pretrain/HL_p125_d2_e64 \
        --ptbxl results/demo/standardized/ptbxl --scp results/demo/raw/ptbxl/scp_statements.csv

Embeddings of every PTB-XL record (mean-pooled tokens), an L2-regularised logistic regression
per superclass task fit on folds 1-8 with its strength chosen on fold 9 (AUROC), AUROC on fold
10, against --random-seeds random-init encoders of the same architecture, with a paired bootstrap
CI of the difference in mean AUROC. A quick check of the pretraining issue; the evaluation stage (issue 4) is the real protocol.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ecgfm.encoder import embed_array, load_model  # noqa: E402
from ecgfm.labels import superclass_labels  # noqa: E402
from ecgfm.model import Architecture, ECGFoundationModel  # noqa: E402
from ecgfm.shards import ShardReader  # noqa: E402

TASKS = ("MI", "STTC", "CD", "HYP")


def probe(features, labels, folds, c_grid=(0.001, 0.01, 0.1, 1.0, 10.0), scores=None):
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.preprocessing import StandardScaler
    train, val, test = folds <= 8, folds == 9, folds == 10
    scaler = StandardScaler().fit(features[train])
    f = scaler.transform(features)
    out = {}
    for task in TASKS:
        y = labels[task].to_numpy()
        best = max(c_grid, key=lambda c: roc_auc_score(
            y[val], LogisticRegression(C=c, max_iter=2000).fit(f[train], y[train]).decision_function(f[val])))
        clf = LogisticRegression(C=best, max_iter=2000).fit(f[train], y[train])
        out[task] = round(float(roc_auc_score(y[test], clf.decision_function(f[test]))), 4)
        if scores is not None:
            scores[task] = (y[test], clf.decision_function(f[test]))
    out["mean"] = round(float(np.mean([out[t] for t in TASKS])), 4)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--ptbxl", type=Path, required=True)
    ap.add_argument("--scp", type=Path, required=True)
    ap.add_argument("--random-seeds", type=int, default=3, help="random-init encoders to compare with")
    ap.add_argument("--bootstrap", type=int, default=1000)
    args = ap.parse_args()
    reader = ShardReader(args.ptbxl)
    m = reader.manifest
    labels = superclass_labels(m["scp_codes"], pd.read_csv(args.scp))
    keep = labels["has_superclass"].to_numpy()
    x = reader.read(np.flatnonzero(keep))
    labels, folds = labels[keep], m["strat_fold"].to_numpy()[keep]
    from sklearn.metrics import roc_auc_score
    arch = Architecture(**json.loads((args.model / "config.json").read_text())["architecture"])
    print(f"{len(x)} records; train {np.sum(folds <= 8)}, validation {np.sum(folds == 9)}, test {np.sum(folds == 10)}")
    ours = {}
    print(f"{'pretrained':<14} test AUROC {probe(embed_array(load_model(args.model), x), labels, folds, scores=ours)}")
    rng = np.random.default_rng(0)
    for seed in range(args.random_seeds):
        torch.manual_seed(seed)
        theirs = {}
        result = probe(embed_array(ECGFoundationModel(arch).eval(), x), labels, folds, scores=theirs)
        # paired bootstrap over test records of the mean-over-tasks AUROC difference
        y0 = ours[TASKS[0]][0]
        diffs = []
        for _ in range(args.bootstrap):
            idx = rng.integers(0, len(y0), len(y0))
            d = [roc_auc_score(ours[t][0][idx], ours[t][1][idx]) - roc_auc_score(theirs[t][0][idx], theirs[t][1][idx])
                 for t in TASKS if 0 < ours[t][0][idx].sum() < len(idx)]
            diffs.append(np.mean(d))
        lo, hi = np.percentile(diffs, [2.5, 97.5])
        print(f"{'random init ' + str(seed):<14} test AUROC {result}; pretrained - random, mean AUROC: "
              f"{np.mean([roc_auc_score(*ours[t]) - roc_auc_score(*theirs[t]) for t in TASKS]):+.4f} "
              f"(95% paired bootstrap CI {lo:+.4f} .. {hi:+.4f})")


if __name__ == "__main__":
    main()
