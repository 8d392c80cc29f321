"""Rule run_config: the effective configuration of the run, for the report."""
from pathlib import Path

import yaml

from ecgfm.runlog import log_to

sm = snakemake  # noqa: F821  (injected by Snakemake)
log = log_to(sm.log[0])
Path(sm.output[0]).write_text(yaml.safe_dump(dict(sm.params.config), sort_keys=False))
log.info("wrote the run's configuration")
