# ecgfm: ECG foundation models with hybrid self-supervised learning (Song et al., KDD 2025).
# This file is a table of contents; each stage lives in rules/<stage>.smk.
from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config.yaml"


validate(config, "ecgfm/schemas/config.schema.yaml")


report: "rules/captions/workflow.rst"


include: "rules/common.smk"
include: "rules/download.smk"
include: "rules/demo.smk"
include: "rules/standardize.smk"
include: "rules/pretrain.smk"
include: "rules/evaluate.smk"
include: "rules/subsample.smk"
include: "rules/risk.smk"
include: "rules/datasets.smk"
include: "rules/report.smk"


rule all:
    input:
        standardized_outputs(),
        pretrained_encoders(),
        evaluation_outputs(),
        report_outputs(),
        dataset_outputs(),
