"""Rule ptbxl_labels: PTB-XL superclass labels and splits of the evaluation (ecgfm.labels)."""
import pandas as pd

from ecgfm.labels import labeled_table
from ecgfm.runlog import log_to

sm = snakemake  # noqa: F821  (injected by Snakemake)
log = log_to(sm.log[0])
table = labeled_table(pd.read_parquet(sm.input.manifest), pd.read_csv(sm.params.scp), sm.params.folds,
                      sm.params.tasks)
table.to_parquet(sm.output[0], index=False)
for split, part in table.groupby("split"):
    log.info("%s: %d records, %d patients; positives %s", split, len(part), part["patient_id"].nunique(),
             {t: int(part[t].sum()) for t in sm.params.tasks})
