"""Rule linear_probe: logistic regressions on one encoder's cached embeddings."""
from ecgfm.evaluate import linear_probe
from ecgfm.runlog import log_to

sm = snakemake  # noqa: F821  (injected by Snakemake)
log_to(sm.log[0])
linear_probe(sm.wildcards.model, sm.input.embeddings, sm.input.labels, sm.params.tasks, sm.params.settings,
             sm.output.rows, seed=sm.config["seed"], scores_out=sm.output.scores)
