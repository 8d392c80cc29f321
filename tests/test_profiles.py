"""`snakemake --profile slurm` as users write it: `ecgfm profiles install` links the workflow's
profiles into Snakemake's profile directory (here a temporary XDG_CONFIG_HOME)."""
import os
import re
import subprocess
import sys

import pytest
import yaml

from conftest import REPO, run_snakemake


def _install(xdg, *args):
    env = {**os.environ, "XDG_CONFIG_HOME": str(xdg)}
    return subprocess.run([sys.executable, "-m", "ecgfm.cli", "profiles", "install", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)


def test_profiles_install_links_each_profile_and_leaves_others_alone(tmp_path):
    run = _install(tmp_path)
    assert run.returncode == 0, run.stderr
    for name in ("slurm", "demo", "local", "ptbxl-cpu", "ptbxl-gpu"):
        link = tmp_path / "snakemake" / name
        assert link.is_symlink() and link.resolve() == (REPO / "profiles" / name).resolve()
    assert _install(tmp_path).returncode == 0                           # again: nothing in the way
    (tmp_path / "snakemake" / "slurm").unlink()
    (tmp_path / "snakemake" / "slurm").mkdir()
    (tmp_path / "snakemake" / "slurm" / "config.yaml").write_text("executor: slurm\n")   # the user's own
    run = _install(tmp_path)
    assert run.returncode == 2 and "not this checkout's profiles" in run.stderr
    assert (tmp_path / "snakemake" / "slurm" / "config.yaml").read_text() == "executor: slurm\n"
    assert _install(tmp_path, "--force").returncode == 0
    assert (tmp_path / "snakemake" / "slurm").resolve() == (REPO / "profiles" / "slurm").resolve()


def test_snakemake_profile_slurm_as_written_plans_the_papers_dag(tmp_path, monkeypatch):
    pytest.importorskip("snakemake_executor_plugin_slurm", reason="pip install -e '.[cluster]'")
    assert _install(tmp_path, "slurm").returncode == 0
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    run = run_snakemake("--profile", "slurm", "-n", "--config", f"results={tmp_path / 'results'}", timeout=300)
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-3000:]
    table = out.split("Job stats:")[1].split("\n\n")[0]
    stats = dict(re.findall(r"^(\w+)\s+(\d+)$", table, re.MULTILINE))
    assert stats["pretrain"] == "81" and stats["download"] == "5" and stats["standardize"] == "5"


def test_no_slurm_group_holds_a_rule_that_waits_on_a_checkpoint(tmp_path):
    """When a checkpoint ends, Snakemake replaces the jobs that wait on it; a replaced job that is
    grouped is lost (snakemake/snakemake#4202: `snakemake --profile slurm -n` failed with
    KeyError: table in DAG.update_ready, in CI and in about 1 of 12 greedy-scheduled dry runs)."""
    groups = yaml.safe_load((REPO / "profiles" / "slurm" / "config.yaml").read_text())["groups"]
    rules = "".join(path.read_text() for path in sorted((REPO / "rules").glob("*.smk")))
    checkpoints = set(re.findall(r"^checkpoint (\w+):", rules, re.MULTILINE))
    assert checkpoints == {"select_architectures"}
    run = run_snakemake("--rulegraph", "--config", f"results={tmp_path / 'results'}", timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    label = dict(re.findall(r'^\s*(\d+)\[label = "(\w+)"', run.stdout, re.MULTILINE))
    edges = re.findall(r"^\s*(\d+) -> (\d+)$", run.stdout, re.MULTILINE)
    waiting = {label[child] for parent, child in edges if label[parent] in checkpoints}
    assert {"collect_results", "table", "lead_table", "risk"} <= waiting
    assert {"embed", "linear_probe"} <= set(groups)
    assert not waiting & set(groups), waiting & set(groups)
