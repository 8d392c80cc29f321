"""Checkpoint select_architectures: each method's best architecture from fold-9 probe results."""
import pandas as pd

from ecgfm.evaluate import write_json
from ecgfm.runlog import log_to
from ecgfm.selection import best_architectures

sm = snakemake  # noqa: F821  (injected by Snakemake)
log = log_to(sm.log[0])
rows = pd.concat([pd.read_parquet(p) for p in sm.input], ignore_index=True)
choice = best_architectures(rows[rows["split"] == "validation"])
log.info("best architectures (fold-9 linear probing): %s", choice)
write_json(choice, sm.output[0])
