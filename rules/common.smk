# Input helpers: small functions that turn the config into file names, and the CPU kernel path
# (config `cpu_kernels`) and GPU visibility that every job inherits. No other computation here.
import json
import os
import platform
from pathlib import Path

from snakemake.logging import logger

from ecgfm.config import (classifier_spec, cpu_flags, cpu_kernel_environment, enabled_sources, gpu_environment, model_name,
                          pretrain_grid, pretrain_settings, probe_settings, random_init_models, raw_dir, risk_settings,
                          raw_origin, risk_needs_variant, standardize_block, training_settings)
from ecgfm.report import TABLE_PROTOCOLS, figure_name, table_protocols, table_title

RESULTS = config["results"]

# The jobs inherit this process's environment: the CPU kernel path is chosen here, once, before any
# job starts a library (config `cpu_kernels`).
KERNEL_ENV = cpu_kernel_environment(config["cpu_kernels"], os.environ, platform.machine(), cpu_flags())
os.environ.update(KERNEL_ENV)
if KERNEL_ENV:
    logger.info("cpu_kernels: " + " ".join(f"{k}={v}" for k, v in sorted(KERNEL_ENV.items())))
# A config that gives no job a GPU runs on the CPU even where one is visible (its figures are CPU figures).
GPU_ENV = gpu_environment(config)
os.environ.update(GPU_ENV)
if GPU_ENV:
    logger.info("no job of this config has a GPU: CUDA_VISIBLE_DEVICES is empty for every job")
SOURCES = enabled_sources(config)


wildcard_constraints:
    source="|".join(SOURCES) or "no-source-enabled",
    method="GL|CL|HL",
    patch=r"\d+",
    depth=r"\d+",
    width=r"\d+",


def raw_input(wildcards):
    """What the standardization of a source waits for: a finished download or demo archive,
    or the user's own local copy (a directory that must exist)."""
    return raw_input_of(wildcards.source)


def raw_input_of(source):
    origin = raw_origin(config, source)
    if origin == "local":
        return raw_dir(config, source)
    return f"{RESULTS}/raw/{source}/.{origin}-complete"


def standardized_outputs():
    return expand(f"{RESULTS}/standardized/{{source}}/manifest.parquet", source=SOURCES)


def pretrain_sources():
    """The pretraining corpus: the enabled sources among ``pretrain.corpus``."""
    missing = [s for s in config["pretrain"]["corpus"] if s not in SOURCES]
    if missing:
        logger.warning(f"pretraining corpus: {', '.join(missing)} not enabled, left out")
    return [s for s in config["pretrain"]["corpus"] if s in SOURCES]


def pretrain_manifests(wildcards, with_ptbxl=False):
    sources = pretrain_sources()
    if config["pretrain"]["include_ptbxl_folds"] or with_ptbxl:
        sources = sources + ["ptbxl"]
    return expand(f"{RESULTS}/standardized/{{source}}/manifest.parquet", source=sources)


def pretrained_encoders():
    return expand(f"{RESULTS}/pretrain/{{name}}/encoder.safetensors", name=pretrain_grid(config))


# --- evaluation --------------------------------------------------------------------------------
SSL_MODEL = r"(GL|CL|HL)_p\d+_d\d+_e\d+"
SUPERVISED_VIT = r"ViT_p\d+_d\d+_e\d+"
STRESS_MODEL = r"(GL|CL|HL|ViT)_p\d+_d\d+_e\d+"
PROBED_MODEL = r"(GL|CL|HL|random)_p\d+_d\d+_e\d+"
PROTOCOLS = config["evaluation"]["protocols"]


def evaluation_outputs():
    """The tidy result tables; none when PTB-XL (the labeled set) is not enabled."""
    if "ptbxl" not in SOURCES:
        logger.warning("ptbxl is not enabled: no evaluation")
        return []
    # the 1D-ResNet50 needs only the labels: named here, it is in the DAG (and can start) before the
    # best-architecture checkpoint has chosen the rest of Table 3
    resnet = [f"{RESULTS}/eval/finetune/ResNet50/results.parquet"] if "finetune" in PROTOCOLS else []
    return expand(f"{RESULTS}/eval/{{protocol}}.parquet", protocol=PROTOCOLS) + resnet


def report_outputs():
    """The paper's tables (CSV, Markdown, HTML) and Figures 3-4; only Table 6 (the corpus) without
    PTB-XL."""
    corpus = expand(f"{RESULTS}/tables/table6.{{ext}}", ext=["csv", "md", "html"]) if SOURCES else []
    if "ptbxl" not in SOURCES:
        return corpus
    numbers = [n for n, protocols in TABLE_PROTOCOLS.items() if set(protocols) <= set(PROTOCOLS)] + [7]
    tables = corpus + expand(f"{RESULTS}/tables/table{{number}}.{{ext}}", number=numbers, ext=["csv", "md", "html"])
    if "lead_subsets" in PROTOCOLS:
        tables += expand(f"{RESULTS}/tables/leads.{{ext}}", ext=["csv", "md", "html"])
    if "linear_probe" in PROTOCOLS and benchmark_task_sets():
        tables += expand(f"{RESULTS}/tables/ptbxl_benchmark.{{ext}}", ext=["csv", "md", "html"])
    figures = []
    if "linear_probe" in PROTOCOLS:
        figures = expand(f"{RESULTS}/figures/{{name}}.{{ext}}", ext=["png", "svg"],
                         name=[figure_name(m) for m in config["pretrain"]["methods"]])
    return tables + figures + [f"{RESULTS}/report/config.yaml"]


def encoder_weights(wildcards):
    """What an embedding job loads: nothing for a random init, else the encoder's weights."""
    model = wildcards.model
    if model.startswith("random_"):
        return []
    if model.startswith("ViT_"):
        return f"{RESULTS}/eval/finetune/{model}/encoder.safetensors"
    return f"{RESULTS}/pretrain/{model}/encoder.safetensors"


def stress_encoder(wildcards):
    """The pretrained encoder a case-ratio / data-usage / benchmark model starts from (none for the
    supervised ViT and 1D-ResNet50)."""
    if wildcards.model.startswith(("ViT_", "ResNet")):
        return []
    return f"{RESULTS}/pretrain/{wildcards.model}/encoder.safetensors"


def best_architectures():
    """{method: {patch, depth, width, model}}, once the checkpoint has chosen them."""
    with open(checkpoints.select_architectures.get().output[0]) as fh:
        return json.load(fh)


def _vit_of(choice):
    return _arch_of("ViT", choice)


def supervised_models():
    """Table 3's baselines: the ViT at each method's best architecture, and the 1D-ResNet50."""
    return sorted({_vit_of(c) for c in best_architectures().values()}) + ["ResNet50"]


def table_scores(wildcards):
    """Table 1 pairs each method's best encoder with the random init of its architecture on the
    same test records: their probes' scores."""
    if wildcards.number != "1":
        return []
    return expand(f"{RESULTS}/eval/linear_probe/{{model}}.scores.parquet", model=best_with_random())


def _arch_of(kind, choice):
    return model_name(kind, choice["patch"], choice["depth"], choice["width"])


def best_with_random():
    """Each method's chosen encoder and the random init of its architecture, sorted."""
    return sorted({m for c in best_architectures().values() for m in (c["model"], _arch_of("random", c))})


def stress_models():
    """Tables 4-5: each method's best encoder, and the ViT at the reference method's architecture."""
    best = best_architectures()
    reference = config["evaluation"]["supervised"]["reference_method"]
    reference = reference if reference in best else sorted(best)[0]
    return [best[m]["model"] for m in config["pretrain"]["methods"]] + [_vit_of(best[reference])]


def risk_encoder(method):
    """The SSL encoder of the risk decomposition: it must have seen PTB-XL's training folds."""
    name = best_architectures()[method]["model"]
    return f"{name}-ptbxl" if risk_needs_variant(config) else name


def risk_inputs(wildcards):
    choice = best_architectures()[wildcards.method]
    return {"labels": f"{RESULTS}/eval/labels.parquet",
            "ssl": f"{RESULTS}/eval/embeddings/{risk_encoder(wildcards.method)}.h5",
            "supervised": f"{RESULTS}/eval/embeddings/{_vit_of(choice)}.h5"}


def risk_pretrain_settings(wildcards):
    settings = pretrain_settings(config, wildcards.method, wildcards.patch, wildcards.depth, wildcards.width)
    settings["name"] += "-ptbxl"
    settings["include_ptbxl_folds"] = list(config["evaluation"]["folds"]["train"])
    return settings


BENCH = config["evaluation"]["ptbxl_benchmark"]
# fine-tuned where the finetune protocol runs (as Table 3's)
BENCH_FINETUNE = BENCH["finetune_task_sets"] if "finetune" in PROTOCOLS else []


def benchmark_task_sets():
    """The task sets of PTB-XL's benchmark that are probed or fine-tuned, in the config's order."""
    return list(dict.fromkeys(BENCH["task_sets"] + BENCH_FINETUNE))


def benchmark_parts(wildcards):
    """PTB-XL's benchmark task sets: each method's chosen encoder and the random init of its
    architecture probed; each chosen encoder fine-tuned and Table 3's supervised baselines."""
    parts = []
    if BENCH["task_sets"]:
        parts += expand(f"{RESULTS}/eval/ptbxl_benchmark/{{model}}.parquet", model=best_with_random())
    if BENCH_FINETUNE:
        parts += expand(f"{RESULTS}/eval/ptbxl_benchmark/finetune/{{model}}.parquet",
                        model=benchmark_finetune_models())
    return parts


def benchmark_finetune_models():
    """The models ``ptbxl_benchmark.finetune_models`` names: a method's chosen encoder, and of
    Table 3's supervised baselines the ViTs (``ViT``) and the ResNet50."""
    wanted = BENCH["finetune_models"]
    chosen = sorted({c["model"] for method, c in best_architectures().items() if method in wanted})
    return chosen + [m for m in supervised_models() if (m if m == "ResNet50" else "ViT") in wanted]


def benchmark_finetune_settings(model):
    """Table 3's training settings (LP-FT for a pretrained encoder, from scratch for the supervised
    baselines), with ``ptbxl_benchmark.finetune``'s changes."""
    from ecgfm.results import describe_model
    supervised = describe_model(model)["method"] == "supervised"
    return {**training_settings(config, supervised=supervised), **BENCH["finetune"]}


def collected_parts(wildcards):
    """The per-job result files that make up ``eval/<protocol>.parquet``."""
    eval_dir, protocol = f"{RESULTS}/eval", wildcards.protocol
    if protocol == "linear_probe":
        models = pretrain_grid(config) + random_init_models(config)
        return expand(f"{eval_dir}/linear_probe/{{model}}.parquet", model=models)
    if protocol == "finetune":
        return expand(f"{eval_dir}/finetune/{{model}}/results.parquet",
                      model=pretrain_grid(config) + supervised_models())
    if protocol in ("case_ratio", "data_usage"):
        return expand(f"{eval_dir}/{protocol}/{{model}}/seed{{seed}}.parquet", model=stress_models(),
                      seed=range(config["evaluation"]["seeds"]))
    if protocol == "lead_subsets":
        return expand(f"{eval_dir}/lead_subsets/{{model}}.parquet",
                      model=[best_architectures()[m]["model"] for m in config["pretrain"]["methods"]])
    return expand(f"{eval_dir}/risk/{{method}}.parquet", method=config["pretrain"]["methods"])


# --- one's own labelled datasets (rules/datasets.smk) -----------------------------------------------
DATASETS = config.get("datasets") or {}


def dataset_paths(name):
    """(ECG folder or file, labels file) of a dataset: its own, or where the demo writes them."""
    spec = DATASETS[name]
    if spec.get("generate"):
        return f"{RESULTS}/raw/datasets/{name}/records", f"{RESULTS}/raw/datasets/{name}/labels.csv"
    return spec["ecgs"], spec["labels"]


def dataset_models(name):
    """The models a dataset is evaluated with: its encoders and, with random_init, the random-init
    encoder of each of their architectures (fine-tuned: the supervised ViT, trained from scratch),
    in each of its modes; with supervised_resnet and the finetune mode, the 1D-ResNet50 trained from
    scratch."""
    from ecgfm.results import describe_model
    spec = DATASETS[name]
    if spec["encoders"] == "best":      # each method's chosen architecture (the checkpoint)
        encoders = [best_architectures()[m]["model"] for m in config["pretrain"]["methods"]]
    else:
        encoders = pretrain_grid(config) if spec["encoders"] == "grid" else list(spec["encoders"])
    models = list(encoders)
    if spec["random_init"]:
        models += sorted({_arch_of("random", describe_model(e)) for e in encoders})
    if spec["supervised_resnet"] and "finetune" in spec["modes"]:
        models.append("ResNet50")
    return models


def dataset_modes(name, model):
    """A dataset's modes for one model: the 1D-ResNet50 is only trained (a probe of its random init
    is no baseline anyone reports)."""
    return ["finetune"] if model == "ResNet50" else list(DATASETS[name]["modes"])


def dataset_outputs():
    return expand(f"{RESULTS}/tables/dataset_{{name}}.{{ext}}", name=list(DATASETS), ext=["csv", "md"])


def dataset_encoder(wildcards):
    if wildcards.model.startswith("random_") or wildcards.model == "ResNet50":
        return f"{RESULTS}/datasets/encoders/{wildcards.model}/encoder.safetensors"
    return f"{RESULTS}/pretrain/{wildcards.model}/encoder.safetensors"
