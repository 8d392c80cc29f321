"""Rule random_encoder: a seeded random initialisation of an architecture (a ViT, or the 1D-ResNet50),
as a model folder."""
from pathlib import Path

from ecgfm.encoder import write_random_encoder
from ecgfm.runlog import log_to

sm = snakemake  # noqa: F821  (injected by Snakemake)
log = log_to(sm.log[0])
write_random_encoder(Path(sm.output[0]).parent, sm.wildcards.model, sm.params.architecture, sm.params.preprocessing,
                     seed=sm.config["seed"], kind=sm.params.kind)
log.info("random-init encoder %s written", sm.wildcards.model)
