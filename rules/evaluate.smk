# Stage 3: evaluation on PTB-XL (ecgfm/evaluate.py): labels and folds, cached embeddings, linear
# probing of every encoder of the grid and of random-init encoders, fine-tuning of every encoder
# (4 tasks jointly), the supervised ViT and 1D-ResNet50 baselines, the choice of each method's
# best architecture on fold-9 results (a checkpoint: what comes after depends on it), and what
# each chosen encoder does with fewer leads; and each chosen encoder on PTB-XL's benchmark task sets
# (probed, fine-tuned) beside the supervised baselines.
EVAL = f"{RESULTS}/eval"
PTBXL = f"{RESULTS}/standardized/ptbxl"
GPU_JOB = config["evaluation"]["resources"]["gpu"]
CPU_JOB = config["evaluation"]["resources"]["cpu"]

# Seconds of work on small tables: on a cluster these run where Snakemake runs, not through the
# queue (and never in a group: a grouped job that the checkpoint replaces is lost, see
# profiles/slurm/config.yaml).
localrules: select_architectures, collect_results


rule ptbxl_labels:
    input:
        manifest=f"{PTBXL}/manifest.parquet",
        raw=lambda wc: raw_input_of("ptbxl"),
    output:
        table=f"{EVAL}/labels.parquet",
        definitions=f"{EVAL}/label_definitions.json",
    params:
        scp=lambda wc: f"{raw_dir(config, 'ptbxl')}/scp_statements.csv",
        folds=config["evaluation"]["folds"],
        tasks=config["evaluation"]["tasks"],
    log:
        f"{RESULTS}/logs/eval/labels.log",
    conda:
        "../envs/data.yaml"
    script:
        "../workflow_scripts/labels.py"


rule embed:
    input:
        labels=f"{EVAL}/labels.parquet",
        manifest=f"{PTBXL}/manifest.parquet",
        encoder=encoder_weights,
    output:
        f"{EVAL}/embeddings/{{model}}.h5",
    params:
        model_dir=lambda wc, input: str(Path(input.encoder).parent) if input.encoder else None,
        architecture=lambda wc: classifier_spec(config, wc.model)["architecture"],
        batch_size=config["evaluation"]["finetune"]["eval_batch_size"],
    threads: GPU_JOB["cpus_per_task"]
    resources:
        gpu=GPU_JOB["gpus"],
        mem_mb=GPU_JOB["mem_mb"],
        runtime=GPU_JOB["runtime"],
    log:
        f"{RESULTS}/logs/eval/embed/{{model}}.log",
    conda:
        "../envs/train.yaml"
    script:
        "../workflow_scripts/embed.py"


rule linear_probe:
    input:
        labels=f"{EVAL}/labels.parquet",
        embeddings=f"{EVAL}/embeddings/{{model}}.h5",
    output:
        rows=f"{EVAL}/linear_probe/{{model}}.parquet",
        scores=f"{EVAL}/linear_probe/{{model}}.scores.parquet",
    wildcard_constraints:
        model=r"[^./]+",
    params:
        settings=probe_settings(config),
        tasks=config["evaluation"]["tasks"],
    threads: CPU_JOB["cpus_per_task"]
    resources:
        mem_mb=CPU_JOB["mem_mb"],
        runtime=CPU_JOB["runtime"],
    log:
        f"{RESULTS}/logs/eval/linear_probe/{{model}}.log",
    conda:
        "../envs/train.yaml"
    script:
        "../workflow_scripts/linear_probe.py"


rule finetune:
    input:
        labels=f"{EVAL}/labels.parquet",
        definitions=f"{EVAL}/label_definitions.json",
        manifest=f"{PTBXL}/manifest.parquet",
        encoder=f"{RESULTS}/pretrain/{{model}}/encoder.safetensors",
    output:
        model=f"{EVAL}/finetune/{{model}}/model.safetensors",
        encoder=f"{EVAL}/finetune/{{model}}/encoder.safetensors",
        config=f"{EVAL}/finetune/{{model}}/config.json",
        rows=f"{EVAL}/finetune/{{model}}/results.parquet",
    wildcard_constraints:
        model=SSL_MODEL,
    params:
        spec=lambda wc: classifier_spec(config, wc.model),
        settings=training_settings(config, supervised=False),
        tasks=config["evaluation"]["tasks"],
    threads: GPU_JOB["cpus_per_task"]
    resources:
        gpu=GPU_JOB["gpus"],
        mem_mb=GPU_JOB["mem_mb"],
        runtime=GPU_JOB["runtime"],
    log:
        f"{RESULTS}/logs/eval/finetune/{{model}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/eval/finetune/{{model}}.tsv"
    conda:
        "../envs/train.yaml"
    script:
        "../workflow_scripts/finetune.py"


use rule finetune as supervised_vit with:
    input:
        labels=f"{EVAL}/labels.parquet",
        definitions=f"{EVAL}/label_definitions.json",
        manifest=f"{PTBXL}/manifest.parquet",
    wildcard_constraints:
        model=SUPERVISED_VIT,
    params:
        spec=lambda wc: classifier_spec(config, wc.model),
        settings=training_settings(config, supervised=True),
        tasks=config["evaluation"]["tasks"],
    log:
        f"{RESULTS}/logs/eval/supervised/{{model}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/eval/supervised/{{model}}.tsv"


use rule supervised_vit as supervised_resnet with:
    output:   # a ResNet has no ViT encoder to ship on its own
        model=f"{EVAL}/finetune/{{model}}/model.safetensors",
        config=f"{EVAL}/finetune/{{model}}/config.json",
        rows=f"{EVAL}/finetune/{{model}}/results.parquet",
    wildcard_constraints:
        model="ResNet50",
    priority: 1   # it needs only the labels: start it as soon as a worker is free, not last


checkpoint select_architectures:
    input:
        expand(f"{EVAL}/linear_probe/{{model}}.parquet", model=pretrain_grid(config)),
    output:
        f"{EVAL}/best_architectures.json",
    params:
        selection=config["evaluation"]["selection"],
        pinned=config["evaluation"].get("paper_architectures", {}),
        methods=config["pretrain"]["methods"],
        pretrained=pretrain_grid(config),
    log:
        f"{RESULTS}/logs/eval/select_architectures.log",
    conda:
        "../envs/data.yaml"
    script:
        "../workflow_scripts/select_architectures.py"


rule lead_subsets:
    input:
        labels=f"{EVAL}/labels.parquet",
        manifest=f"{PTBXL}/manifest.parquet",
        encoder=f"{RESULTS}/pretrain/{{model}}/encoder.safetensors",
        finetuned=f"{EVAL}/finetune/{{model}}/model.safetensors",
    output:
        f"{EVAL}/lead_subsets/{{model}}.parquet",
    wildcard_constraints:
        model=SSL_MODEL,
    params:
        subsets=config["evaluation"]["lead_subsets"],
        settings=probe_settings(config),
        tasks=config["evaluation"]["tasks"],
    threads: GPU_JOB["cpus_per_task"]
    resources:
        gpu=GPU_JOB["gpus"],
        mem_mb=GPU_JOB["mem_mb"],
        runtime=GPU_JOB["runtime"],
    log:
        f"{RESULTS}/logs/eval/lead_subsets/{{model}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/eval/lead_subsets/{{model}}.tsv"
    conda:
        "../envs/train.yaml"
    script:
        "../workflow_scripts/lead_subsets.py"


rule collect_results:
    input:
        collected_parts,
    output:
        f"{EVAL}/{{protocol}}.parquet",
    wildcard_constraints:
        protocol="|".join(PROTOCOLS),
    log:
        f"{RESULTS}/logs/eval/collect_{{protocol}}.log",
    conda:
        "../envs/data.yaml"
    script:
        "../workflow_scripts/collect_results.py"


# PTB-XL's benchmark task sets (ecgfm/ptbxl_tasks.py): their own population (records with a label
# of any listed set), so their own embeddings of each chosen encoder and random init; on the sets of
# finetune_task_sets also each chosen encoder fine-tuned (LP-FT) and the supervised ViT and
# 1D-ResNet50 trained from scratch, as Table 3's.
BENCHMARK = f"{EVAL}/ptbxl_benchmark"


rule ptbxl_benchmark_labels:
    input:
        manifest=f"{PTBXL}/manifest.parquet",
        raw=lambda wc: raw_input_of("ptbxl"),
    output:
        f"{BENCHMARK}/labels.parquet",
    params:
        scp=lambda wc: f"{raw_dir(config, 'ptbxl')}/scp_statements.csv",
        folds=config["evaluation"]["folds"],
        task_sets=benchmark_task_sets(),
        min_count=config["evaluation"]["ptbxl_benchmark"]["min_count"],
    log:
        f"{RESULTS}/logs/eval/ptbxl_benchmark/labels.log",
    conda:
        "../envs/data.yaml"
    script:
        "../workflow_scripts/ptbxl_benchmark_labels.py"


use rule embed as ptbxl_benchmark_embed with:
    input:
        labels=f"{BENCHMARK}/labels.parquet",
        manifest=f"{PTBXL}/manifest.parquet",
        encoder=encoder_weights,
    output:
        f"{BENCHMARK}/embeddings/{{model}}.h5",
    log:
        f"{RESULTS}/logs/eval/ptbxl_benchmark/embed/{{model}}.log",


rule ptbxl_benchmark_probe:
    input:
        labels=f"{BENCHMARK}/labels.parquet",
        embeddings=f"{BENCHMARK}/embeddings/{{model}}.h5",
    output:
        f"{BENCHMARK}/{{model}}.parquet",
    wildcard_constraints:
        model=PROBED_MODEL,
    params:
        task_sets=config["evaluation"]["ptbxl_benchmark"]["task_sets"],
        settings=probe_settings(config),
    threads: CPU_JOB["cpus_per_task"]
    resources:
        mem_mb=CPU_JOB["mem_mb"],
        runtime=CPU_JOB["runtime"],
    log:
        f"{RESULTS}/logs/eval/ptbxl_benchmark/probe/{{model}}.log",
    conda:
        "../envs/train.yaml"
    script:
        "../workflow_scripts/ptbxl_benchmark_probe.py"


rule ptbxl_benchmark_finetune:
    input:
        labels=f"{BENCHMARK}/labels.parquet",
        manifest=f"{PTBXL}/manifest.parquet",
        encoder=stress_encoder,
    output:
        f"{BENCHMARK}/finetune/{{model}}.parquet",
    wildcard_constraints:
        model=f"{STRESS_MODEL}|ResNet50",
    params:
        spec=lambda wc: classifier_spec(config, wc.model),
        settings=lambda wc: benchmark_finetune_settings(wc.model),
        task_sets=config["evaluation"]["ptbxl_benchmark"]["finetune_task_sets"],
    threads: GPU_JOB["cpus_per_task"]
    resources:
        gpu=GPU_JOB["gpus"],
        mem_mb=GPU_JOB["mem_mb"],
        runtime=GPU_JOB["runtime"],
    log:
        f"{RESULTS}/logs/eval/ptbxl_benchmark/finetune/{{model}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/eval/ptbxl_benchmark/finetune/{{model}}.tsv"
    conda:
        "../envs/train.yaml"
    script:
        "../workflow_scripts/ptbxl_benchmark_finetune.py"
