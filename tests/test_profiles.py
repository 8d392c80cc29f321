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


def test_cpu_kernels_avx2_pins_each_librarys_path_where_the_cpu_has_it():
    from ecgfm.config import CPU_KERNEL_PATHS, ConfigError, cpu_kernel_environment
    flags = {"sse4_2", "avx", "avx2", "fma", "avx512f"}
    assert cpu_kernel_environment("native", {}, "x86_64", flags) == {}
    assert cpu_kernel_environment("avx2", {}, "x86_64", flags) == CPU_KERNEL_PATHS["avx2"]
    assert cpu_kernel_environment("avx2", {}, "AMD64", flags) == CPU_KERNEL_PATHS["avx2"]
    site = cpu_kernel_environment("avx2", {"OPENBLAS_CORETYPE": "Zen"}, "x86_64", flags)
    assert "OPENBLAS_CORETYPE" not in site and site["ATEN_CPU_CAPABILITY"] == "avx2"   # the site's own stands
    assert cpu_kernel_environment("avx2", {}, "aarch64", {"asimd"}) == {}
    assert cpu_kernel_environment("avx2", {}, "x86_64", {"sse4_2", "avx"}) == {}        # no AVX2 path there
    with pytest.raises(ConfigError, match="avx512"):
        cpu_kernel_environment("avx512", {}, "x86_64", flags)


def test_the_pinned_variables_choose_the_kernels_they_name():
    """ATen and oneDNN report the path the variables ask for (an unknown name would be ignored
    silently, and the pin would do nothing)."""
    from ecgfm.config import CPU_KERNEL_PATHS, cpu_flags
    if not {"avx2", "fma"} <= cpu_flags():
        pytest.skip("this CPU has no AVX2 path")
    code = ("import torch; print(torch.backends.cpu.get_cpu_capability()); "
            "torch.nn.functional.conv1d(torch.randn(2, 12, 500), torch.randn(8, 12, 125), stride=125)")
    env = {**os.environ, **CPU_KERNEL_PATHS["avx2"], "ONEDNN_VERBOSE": "1"}
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines()[0] == "AVX2", run.stdout
    assert "isa:Intel AVX2\n" in run.stdout or "isa:Intel AVX2 " in run.stdout, run.stdout[:2000]


def test_the_demo_pins_the_avx2_kernels_for_its_jobs():
    from ecgfm.config import load_config
    config = load_config(REPO / "config.yaml", REPO / "profiles" / "demo" / "demo-config.yaml")
    assert config["cpu_kernels"] == "avx2"
    assert load_config(REPO / "config.yaml")["cpu_kernels"] == "native"


def test_a_config_without_gpu_jobs_hides_the_gpus_from_its_jobs():
    """The demo and the CPU profile run on the CPU where a GPU is visible too (their figures, and
    the tests' tolerances, are CPU ones); a config that gives jobs GPUs leaves them visible."""
    from ecgfm.config import gpu_environment, load_config
    demo = load_config(REPO / "config.yaml", REPO / "profiles" / "demo" / "demo-config.yaml")
    cpu = load_config(REPO / "config.yaml", REPO / "profiles" / "ptbxl-cpu" / "ptbxl-config.yaml")
    assert gpu_environment(demo) == gpu_environment(cpu) == {"CUDA_VISIBLE_DEVICES": ""}
    assert gpu_environment(load_config(REPO / "config.yaml")) == {}
    gpu = load_config(REPO / "config.yaml", REPO / "profiles" / "ptbxl-gpu" / "ptbxl-gpu-config.yaml")
    assert gpu_environment(gpu) == {}
    code = "import torch; print(torch.cuda.is_available())"
    run = subprocess.run([sys.executable, "-c", code], env={**os.environ, **gpu_environment(demo)},
                         capture_output=True, text=True, timeout=120)
    assert run.stdout.strip() == "False", run.stderr
