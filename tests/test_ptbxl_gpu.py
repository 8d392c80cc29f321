"""profiles/ptbxl-gpu: real PTB-XL on one GPU, the full profile and its quick overlay. Both must
validate and plan; the quick one runs end to end here on CPU, with its models shrunk."""
import re

import pandas as pd
import pytest
import yaml

from conftest import REPO, run_snakemake
from ecgfm.config import ConfigError, grid_architectures, load_config, pretrain_grid, random_init_models

PROFILE = REPO / "profiles" / "ptbxl-gpu"
FULL = str(PROFILE / "ptbxl-gpu-config.yaml")
QUICK = str(PROFILE / "quick.yaml")
PAPERS_CHOICE = ["GL_p60_d2_e512", "CL_p250_d2_e1024", "HL_p60_d2_e512"]   # the paper's Table 1 rows


def test_quick_profile_is_the_papers_three_encoders_with_the_full_profiles_settings():
    full = load_config(REPO / "config.yaml", FULL)
    quick = load_config(REPO / "config.yaml", FULL, QUICK)
    assert len(pretrain_grid(full)) == 18
    assert {(p, d, w) for p, d, w in grid_architectures(full)} == {(p, 2, w) for p in (60, 125, 250) for w in (512, 1024)}
    assert full["evaluation"]["protocols"] == ["linear_probe", "finetune", "case_ratio", "data_usage", "risk",
                                               "lead_subsets"]
    assert pretrain_grid(quick) == PAPERS_CHOICE
    assert random_init_models(quick) == ["random_p60_d2_e512", "random_p250_d2_e1024"]
    assert quick["evaluation"]["protocols"] == ["linear_probe", "finetune"]
    # pretraining itself is the full profile's: a quick encoder is one of the full grid's
    same = {k: v for k, v in quick["pretrain"].items() if k != "models"}
    assert same == full["pretrain"] and set(PAPERS_CHOICE) <= set(pretrain_grid(full))
    assert full["sources"]["ptbxl"]["enabled"] and not any(
        full["sources"][s]["enabled"] for s in ("mimic", "code15", "samitrop", "ikem", "ukb"))
    assert full["pretrain"]["corpus"] == [] and full["pretrain"]["include_ptbxl_folds"] == list(range(1, 9))


def test_explicit_models_must_cover_the_methods():
    base = yaml.safe_load((REPO / "config.yaml").read_text())
    config = load_config(REPO / "config.yaml", FULL)
    config["pretrain"]["models"] = ["GL_p60_d2_e512", "HL_p60_d2_e512"]
    with pytest.raises(ConfigError, match="no model for method.*CL"):
        pretrain_grid(config)
    config["pretrain"]["methods"] = ["GL"]
    with pytest.raises(ConfigError, match="HL not in pretrain.methods"):
        pretrain_grid(config)
    assert len(pretrain_grid(load_config(REPO / "config.yaml"))) == 81 and "models" not in base["pretrain"]


def _ptbxl(root, n_patients):
    from ecgfm.demo import write_ptbxl
    write_ptbxl(root, n_patients=n_patients, seed=5, max_ecgs_per_patient=2)
    return root


def _job_stats(run) -> dict:
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-3000:]
    table = out.split("Job stats:")[1].split("\n\n")[0]
    return {rule: int(n) for rule, n in re.findall(r"^(\w+)\s+(\d+)$", table, re.MULTILINE)}


def test_both_profiles_plan_with_the_gpu_one_at_a_time(tmp_path):
    data = _ptbxl(tmp_path / "ptbxl", 30)
    overlay = tmp_path / "here.yaml"
    overlay.write_text(yaml.safe_dump({"results": str(tmp_path / "results"), "sources": {"ptbxl": {"path": str(data)}}}))
    full = _job_stats(run_snakemake("--profile", "profiles/ptbxl-gpu", "-n", "--configfile", FULL, str(overlay), timeout=300))
    assert full["pretrain"] == 18 and full["standardize"] == 1 and full["linear_probe"] == 18 + 6
    quick = _job_stats(run_snakemake("--profile", "profiles/ptbxl-gpu", "-n", "--configfile", FULL, QUICK, str(overlay),
                                     timeout=300))
    assert quick["pretrain"] == 3 and quick["embed"] == 5 and quick["linear_probe"] == 5
    assert quick["supervised_resnet"] == 1                       # the ResNet50, known before the checkpoint
    profile = yaml.safe_load((PROFILE / "config.yaml").read_text())
    assert profile["resources"] == ["gpu=1"] and profile["configfile"] == "profiles/ptbxl-gpu/ptbxl-gpu-config.yaml"


SHRUNK = {   # the quick profile's DAG at a size 2 CPU cores run in about two minutes
    "pretrain": {"models": ["GL_p60_d1_e32", "CL_p250_d1_e32", "HL_p60_d1_e32"], "head_dim": 16,
                 "decoder": {"width": 32, "depth": 1}, "projection_dim": 16, "batch_size": 16, "steps": 20,
                 "warmup_steps": 2, "checkpoint_every": 10, "num_workers": 0,
                 "resources": {"gpus": 0, "cpus_per_task": 1, "mem_mb": 2000, "runtime": 10}},
    "standardize": {"threads": 2},
    "evaluation": {"bootstrap_resamples": 50,
                   # the benchmark on one task set, HL's encoder fine-tuned beside both supervised kinds
                   "ptbxl_benchmark": {"task_sets": ["superdiagnostic"], "finetune_models": ["HL", "ViT", "ResNet50"]},
                   "finetune": {"max_epochs": 1, "patience": 1, "batch_size": 32, "eval_batch_size": 64},
                   "supervised": {"resnet": {"layers": [1, 1, 1, 1], "width": 4, "kernel_size": 3, "stem_kernel": 7}},
                   "resources": {"gpu": {"gpus": 0, "cpus_per_task": 1, "mem_mb": 2000, "runtime": 10},
                                 "cpu": {"gpus": 0, "cpus_per_task": 1, "mem_mb": 2000, "runtime": 10}}},
}


def test_quick_profile_runs_end_to_end_on_cpu_at_a_reduced_size(tmp_path):
    data = _ptbxl(tmp_path / "ptbxl", 400)
    results = tmp_path / "results"
    overlay = tmp_path / "shrunk.yaml"
    overlay.write_text(yaml.safe_dump({"results": str(results), "sources": {"ptbxl": {"path": str(data)}}, **SHRUNK}))
    run = run_snakemake("--profile", "profiles/ptbxl-gpu", "--configfile", FULL, QUICK, str(overlay), timeout=600)
    assert run.returncode == 0, (run.stdout + run.stderr)[-3000:]
    tables = results / "tables"
    assert {p.name for p in tables.glob("*.csv")} == {"table1.csv", "table3.csv", "table6.csv", "table7.csv",
                                                    "table8.csv", "table9.csv", "table10.csv", "table11.csv",
                                                    "ptbxl_benchmark.csv"}
    one = pd.read_csv(tables / "table1.csv")
    ours = one[(one.metric == "AUROC")].groupby("key")["model"].first().to_dict()
    assert ours == {"GL": "GL_p60_d1_e32", "CL": "CL_p250_d1_e32", "HL": "HL_p60_d1_e32",
                    "random@GL": "random_p60_d1_e32", "random@HL": "random_p60_d1_e32",
                    "random@CL": "random_p250_d1_e32"}
    three = pd.read_csv(tables / "table3.csv")
    assert set(three.model) == {"GL_p60_d1_e32", "CL_p250_d1_e32", "HL_p60_d1_e32", "ViT_p60_d1_e32",
                                "ViT_p250_d1_e32", "ResNet50"}                # a supervised ViT per architecture
    aurocs = three[three.metric == "AUROC"]
    assert aurocs.ours.between(0, 1).all() and len(aurocs) == 7 * 4       # ResNet50, ViT@GL/CL/HL, GL, CL, HL
    # the benchmark's superdiagnostic set: HL's encoder fine-tuned, the ViT at each chosen
    # architecture and the ResNet50 from scratch (SHRUNK's finetune_models)
    bench = pd.read_csv(tables / "ptbxl_benchmark.csv")
    tuned = bench[(bench.source == "ours") & (bench["mode"] != "linear probe")]
    assert set(tuned.task_set) == {"superdiagnostic"}
    assert set(tuned.loc[tuned["mode"] == "fine-tuned", "key"]) == {"HL"}
    supervised = tuned[tuned["mode"] == "supervised from scratch"]
    assert set(supervised.model) == {"ViT_p60_d1_e32", "ViT_p250_d1_e32", "ResNet50"}
    assert {m for k in supervised.key if k.startswith("ViT@") for m in k[4:].split("/")} == {"GL", "CL", "HL"}
    assert tuned.value.between(0, 1).all()
    assert not (results / "eval" / "risk.parquet").exists() and not (results / "eval" / "case_ratio.parquet").exists()
    assert (results / "figures" / "figure3_HL.png").exists()
