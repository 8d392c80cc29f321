"""Rule ptbxl_benchmark_labels: PTB-XL's benchmark task sets on the standardized records
(ecgfm.ptbxl_tasks.benchmark_table)."""
import pandas as pd

from ecgfm.ptbxl_tasks import benchmark_table, read_statements, task_set_columns
from ecgfm.runlog import log_to

sm = snakemake  # noqa: F821  (injected by Snakemake)
log = log_to(sm.log[0])
table = benchmark_table(pd.read_parquet(sm.input.manifest), read_statements(sm.params.scp), sm.params.folds,
                        sm.params.task_sets, sm.params.min_count)
table.to_parquet(sm.output[0], index=False)
for name in sm.params.task_sets:
    part = table[table[name]]
    log.info("%s: %d classes, %d records (%s)", name, len(task_set_columns(table, name)), len(part),
             part["split"].value_counts().to_dict())
