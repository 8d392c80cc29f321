"""Rules case_ratio and data_usage: fine-tuning on seeded subsets of the training folds."""
from pathlib import Path

import torch

from ecgfm import evaluate
from ecgfm.runlog import log_to

sm = snakemake  # noqa: F821  (injected by Snakemake)
log_to(sm.log[0])
torch.set_num_threads(max(1, sm.threads))
encoder = Path(sm.input.encoder).parent if sm.input.get("encoder") else None
common = dict(model_name=sm.wildcards.model, spec=sm.params.spec, encoder_dir=encoder,
              ptbxl_dir=sm.input.manifest.rsplit("/", 1)[0], labels_path=sm.input.labels, tasks=sm.params.tasks,
              settings=sm.params.settings, seed=int(sm.wildcards.seed), out=sm.output[0])
if sm.rule == "case_ratio":
    evaluate.case_ratio(ratios=sm.params.ratios, size=sm.params.size, **common)
else:
    evaluate.data_usage(fractions=sm.params.fractions, **common)
