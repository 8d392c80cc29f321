"""Rule dataset_demo: the demo's labelled dataset (a CinC-style WFDB folder and labels.csv)."""
from ecgfm.demo import write_demo_source
from ecgfm.runlog import log_to

sm = snakemake  # noqa: F821  (injected by Snakemake)
log = log_to(sm.log[0])
counts = write_demo_source(sm.params.layout, sm.params.dest, **sm.params.generate)
log.info("labelled demo dataset written to %s: %s", sm.params.dest, counts)
