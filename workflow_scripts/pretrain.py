"""Rule pretrain: one model of the grid (resumes from its own checkpoint when rerun)."""
import torch

from ecgfm.config import config_sha256
from ecgfm.pretrain import pretrain
from ecgfm.runlog import log_to

sm = snakemake  # noqa: F821  (injected by Snakemake)
log = log_to(sm.log[0])
torch.set_num_threads(max(1, sm.threads))
summary = pretrain(sm.params.settings, sm.params.sources, sm.output.encoder.rsplit("/", 1)[0],
                   ptbxl_dir=sm.params.ptbxl, progress=True,
                   provenance={"config_sha256": config_sha256(sm.config)})
log.info("pretrained %s on %s records", summary.get("name"), summary.get("data", {}).get("records"))
