"""Rule table: one of the paper's tables from the result rows, beside the published numbers."""
import json
from pathlib import Path

import pandas as pd

from ecgfm.report import build_table, compare, load_published, table1_differences, write_table
from ecgfm.runlog import log_to

sm = snakemake  # noqa: F821  (injected by Snakemake)
log = log_to(sm.log[0])
number = int(sm.wildcards.number)
rows = pd.concat([pd.read_parquet(p) for p in sm.input.rows], ignore_index=True)
best = json.loads(Path(sm.input.best).read_text())
ours = build_table(number, rows, best)
if number == 1:
    scores = {Path(p).name[: -len(".scores.parquet")]: pd.read_parquet(p) for p in sm.input.scores}
    ours = pd.concat([ours, table1_differences(scores, pd.read_parquet(sm.input.labels), best, sm.params.tasks,
                                               sm.params.resamples, seed=sm.config["seed"])], ignore_index=True)
comparison = compare(ours, load_published(sm.input.published), number)
write_table(comparison, sm.output.csv[: -len(".csv")])
log.info("table %d: %d cells of ours, %d of the paper, %d compared", number, comparison["ours"].notna().sum(),
         comparison["paper"].notna().sum(), comparison["diff"].notna().sum())
