# Stage 0b: a synthetic demo archive written in a source's real on-disk format (no network).


rule demo_corpus:
    output:
        f"{RESULTS}/raw/{{source}}/.demo-complete",
    params:
        dest=lambda wc: f"{RESULTS}/raw/{wc.source}",
        layout=lambda wc: config["sources"][wc.source]["reader"],
        generate=lambda wc: config["sources"][wc.source]["generate"],
    log:
        f"{RESULTS}/logs/demo_corpus/{{source}}.log",
    resources:
        runtime=30,
        mem_mb=2000,
    conda:
        "../envs/data.yaml"
    script:
        "../workflow_scripts/demo_corpus.py"
