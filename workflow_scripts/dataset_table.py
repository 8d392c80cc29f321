"""Rule dataset_table: the test metrics of every model on one labelled dataset, with intervals."""
from ecgfm.adapt_report import write_dataset_table
from ecgfm.runlog import log_to

sm = snakemake  # noqa: F821  (injected by Snakemake)
log = log_to(sm.log[0])
frame = write_dataset_table(sm.input, sm.params.dataset, sm.output.csv, sm.output.md)
log.info("%d rows for dataset %s", len(frame), sm.params.dataset)
