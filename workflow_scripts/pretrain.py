"""Rule pretrain: one model of the grid (resumes from its own checkpoint when rerun); on several
processes (GPUs) through torchrun inside the job's allocation (ecgfm/launch.py)."""
import sys

import torch

from ecgfm.config import config_sha256
from ecgfm.launch import launch, processes_for
from ecgfm.pretrain import pretrain
from ecgfm.runlog import log_to

sm = snakemake  # noqa: F821  (injected by Snakemake)
log = log_to(sm.log[0])
out_dir = sm.output.encoder.rsplit("/", 1)[0]
provenance = {"config_sha256": config_sha256(sm.config)}
processes = processes_for(sm.config["pretrain"]["resources"])
if processes > 1:
    log.info("torchrun: %d processes", processes)
    code = launch(sm.params.settings, sm.params.sources, out_dir, processes=processes, threads=sm.threads,
                  ptbxl_dir=sm.params.ptbxl, provenance=provenance)
    if code:
        log.error("pretraining exited with %d%s", code, " (checkpointed; the retry resumes)" if code == 75 else "")
        sys.exit(code)
else:
    torch.set_num_threads(max(1, sm.threads))
    summary = pretrain(sm.params.settings, sm.params.sources, out_dir, ptbxl_dir=sm.params.ptbxl, progress=True,
                       provenance=provenance)
    log.info("pretrained %s on %s records", summary.get("name"), summary.get("data", {}).get("records"))
