"""Checkpoint select_architectures: each method's best architecture from fold-9 probe results
(evaluation.selection), or the paper's own choices pinned (selection: paper)."""
import pandas as pd

from ecgfm.evaluate import write_json
from ecgfm.runlog import log_to
from ecgfm.selection import best_architectures, pinned_architectures

sm = snakemake  # noqa: F821  (injected by Snakemake)
log = log_to(sm.log[0])
if sm.params.selection == "paper":
    choice = pinned_architectures({m: sm.params.pinned[m] for m in sm.params.methods}, sm.params.pretrained)
    log.info("best architectures pinned to the paper's (evaluation.selection: paper): %s", choice)
else:
    rows = pd.concat([pd.read_parquet(p) for p in sm.input], ignore_index=True)
    choice = best_architectures(rows[rows["split"] == "validation"], sm.params.selection)
    log.info("best architectures (fold-9 linear probing, %s): %s", sm.params.selection, choice)
write_json(choice, sm.output[0])
