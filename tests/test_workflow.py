"""The demo DAG end to end through Snakemake, in a temporary results folder."""
import json
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]


def _snakemake(*args, timeout=480):
    exe = shutil.which("snakemake")
    if exe is None:
        pytest.skip("snakemake is not installed (pip install -e '.[workflow]')")
    return subprocess.run(["timeout", "-s", "KILL", str(timeout), exe, *args], cwd=REPO,
                          capture_output=True, text=True)


@pytest.fixture(scope="module")
def demo_results(tmp_path_factory):
    results = tmp_path_factory.mktemp("demo-results")
    run = _snakemake("--profile", "profiles/demo", "--config", f"results={results}")
    assert run.returncode == 0, run.stderr[-3000:]
    return results


def test_demo_dag_standardizes_both_sources(demo_results):
    for source, metadata_rows in (("ptbxl", "ptbxl_database.csv"), ("code15", "exams.csv")):
        out = demo_results / "standardized" / source
        summary = json.loads((out / "summary.json").read_text())
        manifest = pd.read_parquet(out / "manifest.parquet")
        quarantine = pd.read_parquet(out / "quarantine.parquet")
        n_meta = len(pd.read_csv(demo_results / "raw" / source / metadata_rows))
        assert summary["records_in"] == n_meta == len(manifest) + len(quarantine)
        assert len(manifest) > 300 and list(quarantine.reason.str[:11].unique()) == ["no waveform"]
        assert sorted(p.name for p in out.glob("shard-*.h5")) == [f"shard-{k:05d}.h5" for k in
                                                                  range(manifest.shard.max() + 1)]
        assert (demo_results / "logs" / "standardize" / f"{source}.log").exists()
        assert (demo_results / "benchmarks" / "standardize" / f"{source}.tsv").exists()


def test_nothing_to_do_on_a_second_run(demo_results):
    run = _snakemake("--profile", "profiles/demo", "--config", f"results={demo_results}", "-n")
    assert run.returncode == 0
    assert "Nothing to be done" in run.stdout + run.stderr


def test_config_typo_fails_before_any_job(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("standardize: {fs: 250, sampling_rate: 500}\n")
    run = _snakemake("--profile", "profiles/demo", "--configfile", str(bad), "-n", timeout=120)
    assert run.returncode != 0
    assert "sampling_rate" in run.stdout + run.stderr
