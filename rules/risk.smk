# Stage 5: risk decomposition of linear probes (Table 2; ecgfm/risk.py): per method, its best
# encoder (pretrained with PTB-XL's training folds in its corpus) against the supervised ViT of
# the same architecture.


use rule pretrain as pretrain_with_ptbxl with:
    input:
        manifests=lambda wc: pretrain_manifests(wc, with_ptbxl=True),
    output:
        encoder=f"{RESULTS}/pretrain/{{method}}_p{{patch}}_d{{depth}}_e{{width}}-ptbxl/encoder.safetensors",
        config=f"{RESULTS}/pretrain/{{method}}_p{{patch}}_d{{depth}}_e{{width}}-ptbxl/config.json",
        metrics=f"{RESULTS}/pretrain/{{method}}_p{{patch}}_d{{depth}}_e{{width}}-ptbxl/metrics.csv",
    params:
        settings=lambda wc: risk_pretrain_settings(wc),
        sources=lambda wc: [f"{RESULTS}/standardized/{s}" for s in pretrain_sources()],
        ptbxl=PTBXL,
    log:
        f"{RESULTS}/logs/pretrain/{{method}}_p{{patch}}_d{{depth}}_e{{width}}-ptbxl.log",
    benchmark:
        f"{RESULTS}/benchmarks/pretrain/{{method}}_p{{patch}}_d{{depth}}_e{{width}}-ptbxl.tsv"


rule risk:
    input:
        unpack(risk_inputs),
    output:
        f"{EVAL}/risk/{{method}}.parquet",
    params:
        settings=risk_settings(config),
        tasks=config["evaluation"]["tasks"],
        ssl_model=lambda wc: risk_encoder(wc.method),
    threads: CPU_JOB["cpus_per_task"]
    resources:
        mem_mb=CPU_JOB["mem_mb"],
        runtime=CPU_JOB["runtime"],
    log:
        f"{RESULTS}/logs/eval/risk/{{method}}.log",
    conda:
        "../envs/train.yaml"
    script:
        "../workflow_scripts/risk.py"
