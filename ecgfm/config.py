"""The workflow configuration: loading, schema validation, and per-source views of it.

The Snakefile validates with ``snakemake.utils.validate`` against the same schema; this module
gives the package and its tests the same check, and the helpers that ``rules/common.smk`` uses.
"""
from __future__ import annotations

import copy
from pathlib import Path

import yaml

SCHEMA_PATH = Path(__file__).parent / "schemas" / "config.schema.yaml"


class ConfigError(ValueError):
    pass


def deep_merge(base: dict, overlay: dict) -> dict:
    """``overlay`` on top of ``base``, recursively for nested dicts (as Snakemake merges configs)."""
    out = copy.deepcopy(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def validate(config: dict) -> dict:
    """Validate against the schema (filling defaults); raise ``ConfigError`` naming the key."""
    import jsonschema

    schema = yaml.safe_load(SCHEMA_PATH.read_text())
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.path))
    if errors:
        err = errors[0]
        where = ".".join(str(p) for p in err.path) or "(top level)"
        raise ConfigError(f"config key {where}: {err.message}")
    _fill_defaults(config, schema, schema)
    return config


def _fill_defaults(node, schema, root):
    if "$ref" in schema:
        ref = schema["$ref"].split("/")[-1]
        schema = root["$defs"][ref]
    if not isinstance(node, dict):
        return
    for key, sub in schema.get("properties", {}).items():
        if key not in node and isinstance(sub, dict) and "default" in sub:
            node[key] = sub["default"]
        if key in node:
            _fill_defaults(node[key], sub, root)
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        for key in node:
            if key not in schema.get("properties", {}):
                _fill_defaults(node[key], extra, root)


def section_defaults(name: str) -> dict:
    """A top-level section as the schema's defaults fill it (what a command uses without a config)."""
    schema = yaml.safe_load(SCHEMA_PATH.read_text())
    node: dict = {}
    _fill_defaults(node, schema["properties"][name], schema)
    return node


def section_from_files(name: str, *paths) -> dict:
    """One top-level section from YAML files (a full config or just that section, later files
    overlaying earlier ones) on top of its defaults, validated against the schema."""
    import jsonschema
    overlay: dict = {}
    for path in paths:
        overlay = deep_merge(overlay, (yaml.safe_load(Path(path).read_text()) or {}).get(name) or {})
    schema = yaml.safe_load(SCHEMA_PATH.read_text())
    section = deep_merge(section_defaults(name), overlay)
    sub = {**schema["properties"][name], "$defs": schema["$defs"]}
    errors = sorted(jsonschema.Draft202012Validator(sub).iter_errors(section), key=lambda e: list(e.path))
    if errors:
        where = ".".join([name] + [str(p) for p in errors[0].path])
        raise ConfigError(f"config key {where}: {errors[0].message}")
    return section


def load_config(*paths) -> dict:
    """Load and merge YAML files in order (later ones overlay earlier ones), then validate."""
    config: dict = {}
    for path in paths:
        config = deep_merge(config, yaml.safe_load(Path(path).read_text()) or {})
    return validate(config)


def enabled_sources(config: dict) -> list[str]:
    return [name for name, src in config["sources"].items() if src.get("enabled", True)]


def raw_dir(config: dict, source: str) -> str:
    """Where the raw archive of ``source`` lives: its local ``path`` or the managed download dir."""
    src = config["sources"][source]
    return src.get("path") or f"{config['results']}/raw/{source}"


def raw_origin(config: dict, source: str) -> str:
    """How the raw archive comes to be: 'local', 'demo' or 'download'."""
    src = config["sources"][source]
    if src.get("path"):
        return "local"
    if src.get("generate"):
        return "demo"
    if src.get("download"):
        return "download"
    raise ConfigError(f"sources.{source}: set `path` (a local copy), `download` or `generate`"
                      + (" (UK Biobank cannot be downloaded: bring your own XML files)"
                         if src["reader"] == "ukb" else ""))


def standardize_block(config: dict, source: str) -> dict:
    """The global ``standardize`` block with the source's own overrides applied."""
    return deep_merge(config["standardize"], config["sources"][source].get("standardize", {}))


def model_name(method: str, patch: int, depth: int, width: int) -> str:
    return f"{method}_p{patch}_d{depth}_e{width}"


def pretrain_grid(config: dict) -> list[str]:
    """Every model name of the configured grid (the paper's: 81), or ``pretrain.models`` where
    set: an explicit list (the paper's three chosen architectures are not a product grid)."""
    p = config["pretrain"]
    if p.get("models"):
        return _explicit_models(p)
    return [model_name(m, pa, d, w) for m in p["methods"] for pa in p["patch_sizes"]
            for d in p["depths"] for w in p["widths"]]


def _explicit_models(p: dict) -> list[str]:
    from .results import describe_model
    methods = {describe_model(name)["method"] for name in p["models"]}
    stray = sorted(methods - set(p["methods"]))
    if stray:
        raise ConfigError(f"pretrain.models: method(s) {', '.join(stray)} not in pretrain.methods")
    lacking = [m for m in p["methods"] if m not in methods]
    if lacking:
        raise ConfigError(f"pretrain.models: no model for method(s) {', '.join(lacking)} of "
                          "pretrain.methods (every method needs one)")
    return list(dict.fromkeys(p["models"]))


def pretrain_settings(config: dict, method: str, patch: int, depth: int, width: int) -> dict:
    """Everything one pretraining job needs, as a flat dict (what ``ecgfm.pretrain`` reads)."""
    p, std = config["pretrain"], config["standardize"]
    keys = ("mask_ratio", "temperature", "recon_target", "augment", "batch_size", "steps", "lr",
            "betas", "weight_decay", "warmup_steps", "grad_clip", "checkpoint_every", "log_every",
            "block_shards",
            "num_workers", "corpus_memory", "compile", "attention", "dynamic_weights", "loss_balance",
            "loss_balance_momentum", "reconstruction", "include_ptbxl_folds")
    return {
        "name": model_name(method, patch, depth, width), "method": method,
        "weights": dict(p["objectives"][method]), "seed": config["seed"],
        "fs": std["fs"], "seconds": std["seconds"], "leads": list(std["leads"]),
        "architecture": {"patch": int(patch), "depth": int(depth), "width": int(width),
                         "head_dim": p["head_dim"], "mlp_ratio": p["mlp_ratio"],
                         "leads": len(std["leads"]), "n_samples": int(round(std["fs"] * std["seconds"])),
                         "decoder_width": p["decoder"]["width"], "decoder_depth": p["decoder"]["depth"],
                         "projection_dim": p["projection_dim"]},
        **{k: p[k] for k in keys},
    }


# --- evaluation ------------------------------------------------------------------------------------
def vit_architecture(config: dict, patch, depth, width) -> dict:
    return pretrain_settings(config, config["pretrain"]["methods"][0], patch, depth, width)["architecture"]


def grid_architectures(config: dict) -> list[tuple[int, int, int]]:
    """The distinct (patch, depth, width) of the pretrained models, in the grid's order."""
    from .results import describe_model
    archs = [tuple(describe_model(name)[k] for k in ("patch", "depth", "width")) for name in pretrain_grid(config)]
    return list(dict.fromkeys(archs))


def random_init_models(config: dict) -> list[str]:
    """Random-init encoders, one per architecture of the grid (Table 1's baseline)."""
    return [model_name("random", *arch) for arch in grid_architectures(config)]


def classifier_spec(config: dict, model: str) -> dict:
    """{kind, architecture} of a classifier: ``ResNet50`` or a ViT named ``<prefix>_p_d_e``."""
    if model == "ResNet50":
        return {"kind": "resnet1d", "architecture": {**config["evaluation"]["supervised"]["resnet"],
                                                     "leads": len(config["standardize"]["leads"])}}
    from .results import describe_model
    info = describe_model(model)
    return {"kind": "vit", "architecture": vit_architecture(config, info["patch"], info["depth"], info["width"])}


def training_settings(config: dict, supervised: bool) -> dict:
    """Fine-tuning settings (or, with ``supervised``, those of the from-scratch baselines)."""
    ev, std = config["evaluation"], config["standardize"]
    out = dict(ev["finetune"])
    if supervised:                      # trained from scratch: no probe to start the head from
        out["lr"] = ev["supervised"]["lr"]
        out.pop("head_init", None)
    else:                               # LP-FT fits the head as linear probing does
        out["probe_c_grid"], out["probe_max_iter"] = list(ev["probe"]["c_grid"]), ev["probe"]["max_iter"]
    out["bootstrap_resamples"] = ev["bootstrap_resamples"]
    out["preprocessing"] = {"fs": std["fs"], "seconds": std["seconds"], "leads": list(std["leads"]),
                            "units": "mV", "normalization": "none (standardized mV as stored by ecgfm)"}
    return out


def probe_settings(config: dict) -> dict:
    ev = config["evaluation"]
    return {**ev["probe"], "bootstrap_resamples": ev["bootstrap_resamples"]}


def risk_settings(config: dict) -> dict:
    """The linear probes' settings plus the risk decomposition's own (``evaluation.risk``)."""
    return {**probe_settings(config), **config["evaluation"]["risk"]}


def risk_needs_variant(config: dict) -> bool:
    """Whether the risk decomposition needs its own pretraining with PTB-XL's training folds:
    the main grid's corpus does not already hold them all."""
    return not set(config["evaluation"]["folds"]["train"]) <= set(config["pretrain"]["include_ptbxl_folds"])


def config_sha256(config: dict) -> str:
    """A fingerprint of the whole configuration a model was built under (its provenance)."""
    import hashlib
    import json
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()


# The variables that choose each CPU library's kernel path. Two x86-64 machines whose CPUs pick
# different paths (AVX-512 here, AVX2 there) round differently, and 800 steps of training turn
# that into a different model (docs/results.md#the-demo). ``cpu_kernels: avx2`` asks every
# library for its AVX2 path, which any x86-64 CPU since 2013 (Intel Haswell, AMD Excavator) runs:
# ATen's vectorized kernels, oneDNN's convolutions, MKL's GEMM (conditional numerical
# reproducibility) and OpenBLAS (numpy, scipy and scikit-learn's probes).
CPU_KERNEL_PATHS = {
    "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_CBWR": "AVX2",
             "OPENBLAS_CORETYPE": "Haswell"},
}


def cpu_kernel_environment(choice: str, environ: dict, machine: str, cpu_flags: set) -> dict:
    """The variables to add to the jobs' environment for ``cpu_kernels: choice``.

    ``native`` adds none (each library picks the fastest path of the CPU). ``avx2`` adds
    ``CPU_KERNEL_PATHS['avx2']`` on an x86-64 CPU with AVX2 and FMA, except a variable the
    environment already sets (a site's own choice stands, and is what the run used); elsewhere
    (Arm, an older CPU) none, since those paths do not exist there."""
    if choice == "native":
        return {}
    if choice not in CPU_KERNEL_PATHS:
        raise ConfigError(f"cpu_kernels: {choice!r} is not one of native, {', '.join(CPU_KERNEL_PATHS)}")
    if machine.lower() not in ("x86_64", "amd64") or not {"avx2", "fma"} <= cpu_flags:
        return {}
    return {k: v for k, v in CPU_KERNEL_PATHS[choice].items() if k not in environ}


def gpu_environment(config: dict) -> dict:
    """``{"CUDA_VISIBLE_DEVICES": ""}`` where the config gives no job a GPU (``pretrain.resources.gpus``
    and ``evaluation.resources.gpu.gpus`` both 0: the demo and CPU profiles), so that a run planned
    for CPUs runs on them on a machine that also has a GPU, and gives the figures it was planned
    and tested for; else none (a job given GPUs uses them)."""
    gpus = (config["pretrain"]["resources"]["gpus"], config["evaluation"]["resources"]["gpu"]["gpus"])
    return {"CUDA_VISIBLE_DEVICES": ""} if not any(gpus) else {}


def cpu_flags(cpuinfo: str = "/proc/cpuinfo") -> set:
    """The instruction-set flags of this machine's CPU (empty where /proc/cpuinfo is absent)."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.partition(":")[2].split())
    return set()
