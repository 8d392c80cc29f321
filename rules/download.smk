# Stage 0a: download a raw archive (PhysioNet or Zenodo) with checksums, resume and retries.


rule download:
    output:
        f"{RESULTS}/raw/{{source}}/.download-complete",
    params:
        dest=lambda wc: f"{RESULTS}/raw/{wc.source}",
        spec=lambda wc: config["sources"][wc.source]["download"],
        options=config["download"],
    log:
        f"{RESULTS}/logs/download/{{source}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/download/{{source}}.tsv"
    resources:
        runtime=24 * 60,
        mem_mb=2000,
    retries: 2
    conda:
        "../envs/data.yaml"
    script:
        "../workflow_scripts/download.py"
