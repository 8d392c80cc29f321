# Stage 4: low incidence (Table 4) and limited labels (Table 5): each method's best encoder and
# the supervised ViT, fine-tuned on seeded subsets of folds 1-8 (ecgfm/subsample.py). One job per
# (model, seed) runs every ratio x task (or every fraction), so a cluster gets a few dozen jobs.


rule case_ratio:
    input:
        labels=f"{EVAL}/labels.parquet",
        manifest=f"{PTBXL}/manifest.parquet",
        encoder=stress_encoder,
    output:
        f"{EVAL}/case_ratio/{{model}}/seed{{seed}}.parquet",
    wildcard_constraints:
        model=STRESS_MODEL,
        seed=r"\d+",
    params:
        spec=lambda wc: classifier_spec(config, wc.model),
        settings=lambda wc: training_settings(config, supervised=wc.model.startswith("ViT_")),
        tasks=config["evaluation"]["tasks"],
        ratios=config["evaluation"]["case_ratios"],
        size=config["evaluation"]["case_ratio_train_size"],
    threads: GPU_JOB["cpus_per_task"]
    resources:
        gpu=GPU_JOB["gpus"],
        mem_mb=GPU_JOB["mem_mb"],
        runtime=GPU_JOB["runtime"],
    log:
        f"{RESULTS}/logs/eval/case_ratio/{{model}}_seed{{seed}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/eval/case_ratio/{{model}}_seed{{seed}}.tsv"
    conda:
        "../envs/train.yaml"
    script:
        "../workflow_scripts/subsample.py"


use rule case_ratio as data_usage with:
    output:
        f"{EVAL}/data_usage/{{model}}/seed{{seed}}.parquet",
    params:
        spec=lambda wc: classifier_spec(config, wc.model),
        settings=lambda wc: training_settings(config, supervised=wc.model.startswith("ViT_")),
        tasks=config["evaluation"]["tasks"],
        fractions=config["evaluation"]["data_usage"],
    log:
        f"{RESULTS}/logs/eval/data_usage/{{model}}_seed{{seed}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/eval/data_usage/{{model}}_seed{{seed}}.tsv"
