"""Rule demo_corpus: write a synthetic archive in a source's real format."""
from pathlib import Path

from ecgfm.demo import write_demo_source
from ecgfm.runlog import log_to

sm = snakemake  # noqa: F821  (injected by Snakemake)
log = log_to(sm.log[0])
counts = write_demo_source(sm.params.layout, sm.params.dest, **sm.params.generate)
log.info("demo %s archive written to %s: %s", sm.params.layout, sm.params.dest, counts)
Path(sm.output[0]).write_text(f"{counts}\n")
