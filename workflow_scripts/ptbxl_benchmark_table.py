"""Rule ptbxl_benchmark_table: our encoders on PTB-XL's benchmark task sets, beside the peers'."""
import json
from pathlib import Path

import pandas as pd

from ecgfm.report import load_peers, write_benchmark_table
from ecgfm.runlog import log_to

sm = snakemake  # noqa: F821  (injected by Snakemake)
log = log_to(sm.log[0])
rows = pd.concat([pd.read_parquet(p) for p in sm.input.rows], ignore_index=True)
best = json.loads(Path(sm.input.best).read_text())
write_benchmark_table(rows, best, load_peers(sm.input.peers), sm.params.task_sets, sm.output.csv[: -len(".csv")])
log.info("ptbxl benchmark: %d rows of ours, task sets %s", len(rows), sm.params.task_sets)
