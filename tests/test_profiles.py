"""`snakemake --profile slurm` as users write it: `ecgfm profiles install` links the workflow's
profiles into Snakemake's profile directory (here a temporary XDG_CONFIG_HOME)."""
import os
import re
import subprocess
import sys

import pytest

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
