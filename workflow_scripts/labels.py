"""Rule ptbxl_labels: PTB-XL superclass labels and splits of the evaluation, and what each task
means (ecgfm.labels)."""
import json
from pathlib import Path

import pandas as pd

from ecgfm.labels import label_definitions, labeled_table
from ecgfm.runlog import log_to

sm = snakemake  # noqa: F821  (injected by Snakemake)
log = log_to(sm.log[0])
scp = pd.read_csv(sm.params.scp)
table = labeled_table(pd.read_parquet(sm.input.manifest), scp, sm.params.folds, sm.params.tasks)
table.to_parquet(sm.output.table, index=False)
Path(sm.output.definitions).write_text(json.dumps(label_definitions(scp, sm.params.tasks), indent=2) + "\n")
for split, part in table.groupby("split"):
    log.info("%s: %d records, %d patients; positives %s", split, len(part), part["patient_id"].nunique(),
             {t: int(part[t].sum()) for t in sm.params.tasks})
