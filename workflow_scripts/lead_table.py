"""Rule lead_table: each chosen encoder on fewer leads (ecgfm.report.lead_table)."""
import json
from pathlib import Path

import pandas as pd

from ecgfm.report import write_lead_table
from ecgfm.runlog import log_to

sm = snakemake  # noqa: F821  (injected by Snakemake)
log_to(sm.log[0])
write_lead_table(pd.read_parquet(sm.input.rows), json.loads(Path(sm.input.best).read_text()), sm.params.subsets,
                 sm.output.csv[: -len(".csv")])
