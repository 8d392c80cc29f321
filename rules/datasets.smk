# Stage 5b: one's own labelled datasets (config `datasets:`, ecgfm/adapt.py): each encoder, the
# random-init ones and (the random init fine-tuned) the supervised ViT, by linear probe and LP-FT,
# and the supervised 1D-ResNet50 trained from scratch, into tables/dataset_<name>.md and .csv.
# A dataset's labels are inputs of its jobs only.
DS = f"{RESULTS}/datasets"

localrules: dataset_table


rule dataset_demo:
    output:
        ecgs=directory(f"{RESULTS}/raw/datasets/{{dataset}}/records"),
        labels=f"{RESULTS}/raw/datasets/{{dataset}}/labels.csv",
    params:
        dest=lambda wc: f"{RESULTS}/raw/datasets/{wc.dataset}",
        layout="labelled",
        generate=lambda wc: DATASETS[wc.dataset]["generate"],
    log:
        f"{RESULTS}/logs/datasets/{{dataset}}/demo.log",
    conda:
        "../envs/data.yaml"
    script:
        "../workflow_scripts/dataset_demo.py"


rule random_encoder:   # a ViT's random init, or the 1D-ResNet50's (evaluation.supervised.resnet)
    output:
        f"{DS}/encoders/{{model}}/encoder.safetensors",
    wildcard_constraints:
        model=r"random_p\d+_d\d+_e\d+|ResNet50",
    params:
        kind=lambda wc: classifier_spec(config, wc.model)["kind"],
        architecture=lambda wc: classifier_spec(config, wc.model)["architecture"],
        preprocessing=training_settings(config, supervised=True)["preprocessing"],
    log:
        f"{RESULTS}/logs/datasets/encoders/{{model}}.log",
    conda:
        "../envs/train.yaml"
    script:
        "../workflow_scripts/random_encoder.py"


rule dataset_adapt:
    input:
        ecgs=lambda wc: dataset_paths(wc.dataset)[0],
        labels=lambda wc: dataset_paths(wc.dataset)[1],
        encoder=dataset_encoder,
    output:    # the rows of every mode; each mode's model folder is {model}/{mode}/ beside it
        f"{DS}/{{dataset}}/{{model}}/metrics.csv",
    params:
        spec=lambda wc: DATASETS[wc.dataset],
        modes=lambda wc: dataset_modes(wc.dataset, wc.model),
        settings=config["adaptation"],
        cache=lambda wc: f"{DS}/{wc.dataset}/cache",
    threads: GPU_JOB["cpus_per_task"]
    resources:
        gpu=lambda wc: GPU_JOB["gpus"] if "finetune" in dataset_modes(wc.dataset, wc.model) else 0,
        mem_mb=GPU_JOB["mem_mb"],
        runtime=GPU_JOB["runtime"],
    log:
        f"{RESULTS}/logs/datasets/{{dataset}}/{{model}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/datasets/{{dataset}}/{{model}}.tsv"
    conda:
        "../envs/train.yaml"
    script:
        "../workflow_scripts/dataset_adapt.py"


rule dataset_table:
    input:
        lambda wc: [f"{DS}/{wc.dataset}/{m}/metrics.csv" for m in dataset_models(wc.dataset)],
    output:
        csv=f"{RESULTS}/tables/dataset_{{dataset}}.csv",
        md=f"{RESULTS}/tables/dataset_{{dataset}}.md",
    params:
        dataset=lambda wc: wc.dataset,
    log:
        f"{RESULTS}/logs/datasets/{{dataset}}/table.log",
    conda:
        "../envs/report.yaml"
    script:
        "../workflow_scripts/dataset_table.py"
