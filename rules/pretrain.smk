# Stage 2: pretraining, one job per method x patch x depth x width of the grid
# (ecgfm/pretrain.py; the paper's config: 81 jobs, each a GPU job).


rule pretrain:
    input:
        manifests=pretrain_manifests,
    output:
        encoder=f"{RESULTS}/pretrain/{{method}}_p{{patch}}_d{{depth}}_e{{width}}/encoder.safetensors",
        config=f"{RESULTS}/pretrain/{{method}}_p{{patch}}_d{{depth}}_e{{width}}/config.json",
        metrics=f"{RESULTS}/pretrain/{{method}}_p{{patch}}_d{{depth}}_e{{width}}/metrics.csv",
    params:
        settings=lambda wc: pretrain_settings(config, wc.method, wc.patch, wc.depth, wc.width),
        sources=lambda wc: [f"{RESULTS}/standardized/{s}" for s in pretrain_sources()],
        ptbxl=lambda wc: f"{RESULTS}/standardized/ptbxl" if config["pretrain"]["include_ptbxl_folds"] else None,
    threads: config["pretrain"]["resources"]["cpus_per_task"]
    resources:
        gpu=config["pretrain"]["resources"]["gpus"],
        mem_mb=config["pretrain"]["resources"]["mem_mb"],
        runtime=config["pretrain"]["resources"]["runtime"],
    # a job stopped by SIGTERM/SIGUSR1 checkpoints and exits 75; the retry resumes from it
    retries: 3
    log:
        f"{RESULTS}/logs/pretrain/{{method}}_p{{patch}}_d{{depth}}_e{{width}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/pretrain/{{method}}_p{{patch}}_d{{depth}}_e{{width}}.tsv"
    conda:
        "../envs/train.yaml"
    script:
        "../workflow_scripts/pretrain.py"
