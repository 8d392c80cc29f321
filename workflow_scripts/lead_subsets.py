"""Rule lead_subsets: one chosen encoder's probe and fine-tuned model on fewer leads (ecgfm.evaluate)."""
from pathlib import Path

import torch

from ecgfm.evaluate import lead_subsets
from ecgfm.runlog import log_to

sm = snakemake  # noqa: F821  (injected by Snakemake)
log_to(sm.log[0])
torch.set_num_threads(max(1, sm.threads))
lead_subsets(sm.wildcards.model, Path(sm.input.encoder).parent, Path(sm.input.finetuned).parent,
             sm.input.manifest.rsplit("/", 1)[0], sm.input.labels, sm.params.tasks, dict(sm.params.subsets),
             sm.params.settings, seed=sm.config["seed"], out=sm.output[0])
