"""Rule download: fetch a raw archive with checksums; the marker is written only when all is verified."""
from pathlib import Path

from ecgfm.download import download_source
from ecgfm.runlog import log_to

sm = snakemake  # noqa: F821  (injected by Snakemake)
log = log_to(sm.log[0])
files = download_source(sm.params.spec, sm.params.dest, sm.params.options)
log.info("%d files verified under %s", len(files), sm.params.dest)
Path(sm.output[0]).write_text("".join(f"{name}\n" for name in files))
