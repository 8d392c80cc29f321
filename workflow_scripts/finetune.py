"""Rules finetune and supervised: one classifier on folds 1-8, early-stopped on fold 9."""
import json
from pathlib import Path

import torch

from ecgfm.config import config_sha256
from ecgfm.evaluate import finetune
from ecgfm.runlog import log_to

sm = snakemake  # noqa: F821  (injected by Snakemake)
log_to(sm.log[0])
torch.set_num_threads(max(1, sm.threads))
encoder = sm.input.get("encoder")
finetune(sm.wildcards.model, sm.params.spec, Path(encoder).parent if encoder else None,
         sm.input.manifest.rsplit("/", 1)[0], sm.input.labels, sm.params.tasks, sm.params.settings,
         Path(sm.output.rows).parent, seed=sm.config["seed"],
         provenance={"workflow_rule": sm.rule, "config_sha256": config_sha256(sm.config)},
         labels=json.loads(Path(sm.input.definitions).read_text()))
