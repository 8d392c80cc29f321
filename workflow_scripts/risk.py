"""Rule risk: the four risk components of one method's linear probe (Table 2)."""
from ecgfm.evaluate import risk
from ecgfm.runlog import log_to

sm = snakemake  # noqa: F821  (injected by Snakemake)
log_to(sm.log[0])
risk(sm.params.ssl_model, sm.input.ssl, sm.input.supervised, sm.input.labels, sm.params.tasks,
     sm.params.settings, seed=sm.config["seed"], out=sm.output[0])
