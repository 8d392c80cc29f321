"""Rule collect_results: one protocol's per-job rows -> results/eval/<protocol>.parquet."""
from ecgfm.results import concat_rows
from ecgfm.runlog import log_to

sm = snakemake  # noqa: F821  (injected by Snakemake)
log = log_to(sm.log[0])
frame = concat_rows(sm.input, sm.output[0])
log.info("%s: %d rows from %d jobs", sm.wildcards.protocol, len(frame), len(sm.input))
