"""Rule ptbxl_benchmark_finetune: one encoder fine-tuned (LP-FT), or a supervised baseline trained from
scratch, on PTB-XL's benchmark task sets."""
from pathlib import Path

import torch

from ecgfm.evaluate import ptbxl_benchmark_finetune
from ecgfm.runlog import log_to

sm = snakemake  # noqa: F821  (injected by Snakemake)
log_to(sm.log[0])
torch.set_num_threads(max(1, sm.threads))
encoder = sm.input.get("encoder")
ptbxl_benchmark_finetune(sm.wildcards.model, sm.params.spec, Path(encoder).parent if encoder else None,
                         Path(sm.input.manifest).parent, sm.input.labels, sm.params.task_sets,
                         sm.params.settings, sm.output[0], seed=sm.config["seed"])
