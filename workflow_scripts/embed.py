"""Rule embed: cache one encoder's embeddings of every labeled PTB-XL record."""
import torch

from ecgfm.evaluate import embed
from ecgfm.runlog import log_to

sm = snakemake  # noqa: F821  (injected by Snakemake)
log_to(sm.log[0])
torch.set_num_threads(max(1, sm.threads))
embed(sm.wildcards.model, sm.params.model_dir, sm.params.architecture, sm.input.manifest.rsplit("/", 1)[0],
      sm.input.labels, sm.output[0], seed=sm.config["seed"], batch_size=sm.params.batch_size)
