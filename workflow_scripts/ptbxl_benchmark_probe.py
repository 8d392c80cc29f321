"""Rule ptbxl_benchmark_probe: one encoder's multi-label linear probes on PTB-XL's benchmark task sets."""
from ecgfm.evaluate import ptbxl_benchmark_probe
from ecgfm.runlog import log_to

sm = snakemake  # noqa: F821  (injected by Snakemake)
log_to(sm.log[0])
ptbxl_benchmark_probe(sm.wildcards.model, sm.input.embeddings, sm.input.labels, sm.params.task_sets,
                      sm.params.settings, sm.output[0], seed=sm.config["seed"])
