"""Does the masked autoencoder learn? A pretraining run's reconstruction loss beside what
predicting nothing costs on the same corpus.

Baselines of the L1 over masked values (``pretrain.reconstruction: mean``, with the run's
``recon_target``), over ``--records`` ECGs drawn from the corpus (the masked patches are a
uniform draw, so the mean over every patch is their expectation):

* zero: the decoder predicts 0 everywhere (raw targets: the mean absolute value of the signal in
  mV; patch_norm targets: of the standardized patches, about 0.8);
* lead median (raw targets): each lead predicted as the flat line at its own median over the
  record (an oracle a little better than any constant the visible patches allow).

Then, per run folder (``results/.../pretrain/<model>``): ``loss_recon`` over its first and last
``--window`` logged steps, and the last as a share of each baseline.

    python benchmarks/recon_baseline.py --ptbxl results/ptbxl-cpu/standardized/ptbxl --folds 1-8 \\
        --runs results/ptbxl-cpu/pretrain/GL_p125_d2_e128
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

import torch

from ecgfm.model import crop_to_patches, fit_length
from ecgfm.objectives import reconstruction_loss
from ecgfm.pretrain_data import PretrainCorpus


def baselines(corpus: PretrainCorpus, patch: int, target_mode: str, records: int, seed: int) -> dict:
    """The reconstruction loss (``ecgfm.objectives.reconstruction_loss``, every patch counted) of
    a decoder that predicts 0, and (raw targets) of each lead's flat median line."""
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(len(corpus), size=min(records, len(corpus)), replace=False))
    x = crop_to_patches(torch.from_numpy(corpus.read(rows).astype(np.float32)), patch)   # [n, leads, T]
    b, leads, t = x.shape
    as_patches = lambda v: v.view(b, leads, t // patch, patch).permute(0, 2, 1, 3).reshape(b, t // patch, -1)  # noqa: E731
    target, every = as_patches(x), torch.ones(b, t // patch)
    out = {"records": len(rows),
           "zero": float(reconstruction_loss(torch.zeros_like(target), target, every, target_mode, leads))}
    if target_mode == "raw":
        flat = x.median(dim=-1, keepdim=True).values.expand_as(x).contiguous()
        out["lead_median"] = float(reconstruction_loss(as_patches(flat), target, every, target_mode, leads))
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sources", nargs="*", default=[], help="standardized source folders of the corpus")
    ap.add_argument("--ptbxl", help="standardized PTB-XL folder (with --folds)")
    ap.add_argument("--folds", default="1-8", help="PTB-XL folds in the corpus, e.g. 1-8")
    ap.add_argument("--runs", nargs="+", required=True, help="pretraining run folders (metrics.csv, config.json)")
    ap.add_argument("--records", type=int, default=2000)
    ap.add_argument("--window", type=int, default=10, help="logged steps averaged at each end")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    low, _, high = args.folds.partition("-")
    folds = list(range(int(low), int(high or low) + 1)) if args.ptbxl else []
    corpus = PretrainCorpus(args.sources, args.ptbxl, folds)
    for run in map(Path, args.runs):
        config = json.loads((run / "config.json").read_text())
        target_mode = config["objective"]["recon_target"]
        base = baselines(corpus, config["architecture"]["patch"], target_mode, args.records, args.seed)
        m = pd.read_csv(run / "metrics.csv")
        if m["loss_recon"].isna().all():
            print(f"{run.name}: no reconstruction loss (method {config['objective']['method']})")
            continue
        first, last = m["loss_recon"].head(args.window).mean(), m["loss_recon"].tail(args.window).mean()
        reduction = config["objective"].get("reconstruction", "mean")
        if reduction == "sum":       # per ECG summed over its masked values: back to a mean per value
            n = fit_length(config["architecture"]["n_samples"], config["architecture"]["patch"]) // \
                config["architecture"]["patch"]
            masked = n - int(round(n * (1 - config["objective"]["mask_ratio"])))
            per_value = masked * config["architecture"]["leads"] * config["architecture"]["patch"]
            first, last = first / per_value, last / per_value
        median = (f", lead-median baseline {base['lead_median']:.4f} ({last / base['lead_median']:.0%})"
                  if "lead_median" in base else "")
        print(f"{run.name}: targets {target_mode}, reconstruction {reduction} (shown per masked value), "
              f"{len(m)} steps: loss_recon {first:.4f} -> {last:.4f} (x{last / first:.2f}); zero-prediction "
              f"baseline {base['zero']:.4f} (last = {last / base['zero']:.0%} of it){median}; {base['records']} records")


if __name__ == "__main__":
    main()
