# Input helpers: small functions that turn the config into file names. No computation here.
from snakemake.logging import logger

from ecgfm.config import (enabled_sources, pretrain_grid, pretrain_settings, raw_dir, raw_origin,
                          standardize_block)

RESULTS = config["results"]
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
    origin = raw_origin(config, wildcards.source)
    if origin == "local":
        return raw_dir(config, wildcards.source)
    return f"{RESULTS}/raw/{wildcards.source}/.{origin}-complete"


def standardized_outputs():
    return expand(f"{RESULTS}/standardized/{{source}}/manifest.parquet", source=SOURCES)


def pretrain_sources():
    """The pretraining corpus: the enabled sources among ``pretrain.corpus``."""
    missing = [s for s in config["pretrain"]["corpus"] if s not in SOURCES]
    if missing:
        logger.warning(f"pretraining corpus: {', '.join(missing)} not enabled, left out")
    return [s for s in config["pretrain"]["corpus"] if s in SOURCES]


def pretrain_manifests(wildcards):
    sources = pretrain_sources()
    if config["pretrain"]["include_ptbxl_folds"]:
        sources = sources + ["ptbxl"]
    return expand(f"{RESULTS}/standardized/{{source}}/manifest.parquet", source=sources)


def pretrained_encoders():
    return expand(f"{RESULTS}/pretrain/{{name}}/encoder.safetensors", name=pretrain_grid(config))
