# Stage 1: raw archive -> 12 leads x 250 Hz x 10 s in mV, sharded HDF5 + Parquet manifest,
# quarantine and QC summary (ecgfm/corpus.py, ecgfm/standardize.py).


rule standardize:
    input:
        raw=raw_input,
    output:
        manifest=f"{RESULTS}/standardized/{{source}}/manifest.parquet",
        quarantine=f"{RESULTS}/standardized/{{source}}/quarantine.parquet",
        summary=f"{RESULTS}/standardized/{{source}}/summary.json",
    params:
        root=lambda wc: raw_dir(config, wc.source),
        reader=lambda wc: config["sources"][wc.source]["reader"],
        reader_options=lambda wc: config["sources"][wc.source].get("reader_options", {}),
        settings=lambda wc: standardize_block(config, wc.source),
    threads: config["standardize"]["threads"]
    resources:
        mem_mb=lambda wc, threads: 2000 + 1000 * threads,
        runtime=12 * 60,
    log:
        f"{RESULTS}/logs/standardize/{{source}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/standardize/{{source}}.tsv"
    conda:
        "../envs/data.yaml"
    script:
        "../workflow_scripts/standardize.py"
