"""Rule figure: Figure 3 (HL) or 4 (CL, GL): probe AUROC by patch size, depth and width."""
import pandas as pd

from ecgfm.report import architecture_figure
from ecgfm.runlog import log_to

sm = snakemake  # noqa: F821  (injected by Snakemake)
log = log_to(sm.log[0])
rows = pd.read_parquet(sm.input[0])
paths = architecture_figure(rows, sm.wildcards.method, sm.params.tasks, sm.output.png[: -len(".png")])
log.info("wrote %s", ", ".join(map(str, paths)))
