# Input helpers: small functions that turn the config into file names. No computation here.
from ecgfm.config import enabled_sources, raw_dir, raw_origin, standardize_block

RESULTS = config["results"]
SOURCES = enabled_sources(config)


wildcard_constraints:
    source="|".join(SOURCES) or "no-source-enabled",


def raw_input(wildcards):
    """What the standardization of a source waits for: a finished download or demo archive,
    or the user's own local copy (a directory that must exist)."""
    origin = raw_origin(config, wildcards.source)
    if origin == "local":
        return raw_dir(config, wildcards.source)
    return f"{RESULTS}/raw/{wildcards.source}/.{origin}-complete"


def standardized_outputs():
    return expand(f"{RESULTS}/standardized/{{source}}/manifest.parquet", source=SOURCES)
