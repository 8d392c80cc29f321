"""profiles/slurm against a real single-node SLURM started by .ci/local-slurm: a subset of the demo
DAG through sbatch (from a small demo corpus standardized locally: a pretraining job on two torchrun
processes inside its allocation, the labels, and an embed + probe group job), and a pretraining job preempted with SIGUSR1 that resumes to the same weights.
With ECGFM_SLOW_TESTS=1, also the whole demo DAG through sbatch (about 5 minutes more): the
checkpoint, the probe groups and the local report rules in a real run.

Needs root, Debian's SLURM packages (`.ci/local-slurm install`, which .ci/run does) and
snakemake-executor-plugin-slurm (`pip install -e '.[cluster]'`); skips with the reason otherwise.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from conftest import tiny_pretrain_settings
from ecgfm.launch import write_job

REPO = Path(__file__).resolve().parents[1]
LOCAL_SLURM = REPO / ".ci" / "local-slurm"
PARTITION = "debug"


def _missing() -> str | None:
    if os.geteuid() != 0:
        return "starting a SLURM needs root"
    if not Path("/usr/sbin/slurmctld").exists() or shutil.which("sbatch") is None:
        return "SLURM is not installed (.ci/local-slurm install; .ci/run does it)"
    if subprocess.run(["pgrep", "-x", "slurmctld"], capture_output=True, check=False).returncode == 0:
        return "a slurmctld not started by this test is running"
    try:
        import snakemake_executor_plugin_slurm  # noqa: F401
    except ImportError:
        return "snakemake-executor-plugin-slurm is not installed (pip install -e '.[cluster]')"
    return None


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    """A running single-node SLURM for this module; stopped, exactly its own processes, after."""
    reason = _missing()
    if reason:
        pytest.skip(reason)
    state = tmp_path_factory.mktemp("slurm-state")
    env = {**os.environ, "ECGFM_SLURM_STATE": str(state), "ECGFM_SLURM_PARTITION": PARTITION}
    start = subprocess.run([str(LOCAL_SLURM), "start"], env=env, capture_output=True, text=True, timeout=180,
                           check=False)
    assert start.returncode == 0, start.stdout + start.stderr
    pids = dict(line.split() for line in (state / "pids").read_text().splitlines() if line[0].isalpha()
                and not line.startswith("hosts"))
    yield state
    stop = subprocess.run([str(LOCAL_SLURM), "stop"], env=env, capture_output=True, text=True, timeout=120,
                          check=False)
    assert stop.returncode == 0, stop.stdout + stop.stderr
    for name, pid in pids.items():
        assert not Path(f"/proc/{pid}").exists(), f"{name} ({pid}) still runs after stop"
    assert not Path("/etc/slurm/slurm.conf").exists()


def _jobs() -> dict[str, dict]:
    """Every job the controller still knows (finished ones stay MinJobAge = 300 s)."""
    out = subprocess.run(["scontrol", "show", "job", "-o"], capture_output=True, text=True, check=False).stdout
    jobs = {}
    for line in out.splitlines():
        fields = dict(re.findall(r"(\w+)=(\S*)", line))
        if "JobId" in fields:
            jobs[fields["JobId"]] = fields
    return jobs


def _wait_for_job(job_id: str, timeout=240) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        job = _jobs().get(job_id, {})
        if job.get("JobState") in ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "PREEMPTED", "NODE_FAIL"):
            return job
        time.sleep(0.5)
    raise AssertionError(f"SLURM job {job_id} did not end in {timeout} s: {_jobs().get(job_id)}")


def _cluster_profile(tmp_path: Path, configs: list[str]) -> Path:
    """profiles/slurm as a site would adapt it: the local partition, no account, sizes that fit
    a 2-core node; ``configs`` (``_cluster_configs``) on top."""
    profile = yaml.safe_load((REPO / "profiles" / "slurm" / "config.yaml").read_text())
    profile["default-resources"]["slurm_partition"] = PARTITION
    profile["default-resources"].pop("slurm_account")
    profile["slurm-no-account"] = True
    for resources in profile["set-resources"].values():
        if "slurm_partition" in resources:
            resources["slurm_partition"] = PARTITION
    profile["set-resources"]["standardize"]["mem_mb"] = 3000
    profile["set-threads"] = {"standardize": 1, "download": 1}
    profile["slurm-init-seconds-before-status-checks"] = 1
    profile["seconds-between-status-checks"] = 2      # a test machine's queue is empty: poll often
    profile["max-status-checks-per-second"] = 10
    profile["jobs"] = 4
    profile["configfile"] = configs
    out = tmp_path / "profile"
    out.mkdir()
    (out / "config.yaml").write_text(yaml.safe_dump(profile, sort_keys=False))
    return out


# a smaller demo corpus for the subset test (the same sources and layouts), so that it need not wait
# for the whole demo DAG that the other tests share
SMALL_CORPUS = {"ptbxl": 400, "code15": 80, "samitrop": 20, "ikem": 20}


def _cluster_configs(tmp_path: Path, results: Path, small: bool = False) -> list[str]:
    """The demo config, then the test's: the results folder, pretraining on 2 torchrun processes
    (and with ``small``, the demo corpus at SMALL_CORPUS's patient counts)."""
    extra = {"results": str(results),
             "pretrain": {"steps": 20, "warmup_steps": 2, "checkpoint_every": 10,
                          "resources": {"gpus": 0, "processes": 2, "cpus_per_task": 2, "mem_mb": 4000, "runtime": 30}}}
    if small:
        extra["sources"] = {name: {"generate": {"n_patients": n}} for name, n in SMALL_CORPUS.items()}
    path = tmp_path / "cluster-test.yaml"
    path.write_text(yaml.safe_dump(extra))
    return [str(REPO / "profiles" / "demo" / "demo-config.yaml"), str(path)]


def _standardize_small_corpus(results: Path, configs: list[str]) -> None:
    """The demo's four sources at SMALL_CORPUS's sizes (``configs`` say so), written and
    standardized into ``results`` by a local run of the demo profile, so that the cluster run
    that follows finds them done."""
    targets = [str(results / "standardized" / name / "manifest.parquet") for name in SMALL_CORPUS]
    run = subprocess.run(["timeout", "-s", "KILL", "300", shutil.which("snakemake"), "--profile", "profiles/demo",
                          "--configfile", *configs, "--", *targets], cwd=REPO, capture_output=True, text=True,
                         check=False)
    assert run.returncode == 0, (run.stdout + run.stderr)[-4000:]


def _demo_through_sbatch(demo_results, tmp_path, *targets, timeout):
    """Snakemake with the cluster profile from standardized demo shards: the whole demo's (the
    local run's ``demo_results``, copied), or with ``demo_results`` None a small corpus's made
    here; for ``targets`` (paths under the results folder; none: the whole DAG): the results
    folder, its log, the SLURM jobs it logged as submitted ({id: rule or group}), every SLURM job
    that appeared meanwhile, and the wall time."""
    results = tmp_path / "results"
    configs = _cluster_configs(tmp_path, results, small=demo_results is None)
    if demo_results is None:
        _standardize_small_corpus(results, configs)
    else:
        for stage in ("raw", "standardized"):
            shutil.copytree(demo_results / stage, results / stage)
    profile = _cluster_profile(tmp_path, configs)
    before = set(_jobs())
    t0 = time.time()
    run = subprocess.run(["timeout", "-s", "KILL", str(timeout), shutil.which("snakemake"), "--profile", str(profile),
                          *(str(results / t) for t in targets)],
                         cwd=REPO, capture_output=True, text=True, check=False)
    wall = time.time() - t0
    log = run.stdout + run.stderr
    assert run.returncode == 0, log[-4000:]
    submitted = dict(re.findall(r"submitted with SLURM jobid (\d+) \(log: \S*/slurm_logs/((?:rule|group)_\w+)", log))
    ours = {k: v for k, v in _jobs().items() if k not in before}
    return results, log, submitted, ours, wall


def test_demo_subset_runs_through_sbatch(slurm, tmp_path):
    target = "eval/linear_probe/HL_p125_d2_e64.parquet"
    results, log, submitted, ours, wall = _demo_through_sbatch(None, tmp_path, target, timeout=540)
    assert (results / target).exists()
    # every job went through sbatch: one SLURM job per submission that Snakemake logged, all done
    assert submitted and set(submitted) == set(ours), (submitted, sorted(ours))
    assert {j["JobState"] for j in ours.values()} == {"COMPLETED"}
    assert {j["Partition"] for j in ours.values()} == {PARTITION}
    controller = (slurm / "log" / "slurmctld.log").read_text()
    for job_id in submitted:
        assert re.search(rf"_slurm_rpc_submit_batch_job: JobId={job_id}\b", controller), job_id
    # pretraining, labels, and embed + probe as one group job
    assert sorted(submitted.values()) == ["group_probe_embed_linear_probe", "rule_pretrain",
                                          "rule_ptbxl_labels"], submitted
    pretrain = next(k for k, rule in submitted.items() if rule == "rule_pretrain")
    assert ours[pretrain]["NumCPUs"] == "2"
    # DDP inside that allocation: two torchrun ranks with gloo
    trained = json.loads((results / "pretrain" / "HL_p125_d2_e64" / "config.json").read_text())
    assert trained["world_size"] == 2
    print(f"\ndemo subset through SLURM: {len(submitted)} jobs in {wall:.0f} s")


@pytest.mark.skipif(os.environ.get("ECGFM_SLOW_TESTS") != "1",
                    reason="the whole demo DAG through sbatch takes about 5 minutes: ECGFM_SLOW_TESTS=1")
def test_whole_demo_dag_runs_through_sbatch(slurm, demo_results, tmp_path):
    """Every job of the demo after standardization: the GPU-side rules through sbatch, grouped
    where the profile says, and the rules that wait on the select_architectures checkpoint
    (localrules) after it, none lost (snakemake/snakemake#4202, #823)."""
    results, log, submitted, ours, _ = _demo_through_sbatch(demo_results, tmp_path, timeout=1200)
    steps = re.findall(r"(\d+) of (\d+) steps \(\d+%\) done", log)
    assert steps and steps[-1][0] == steps[-1][1], steps[-1:]
    assert set(submitted) == set(ours) and {j["JobState"] for j in ours.values()} == {"COMPLETED"}
    local = set(re.findall(r"^local(?:rule|checkpoint) (\w+):", log, re.MULTILINE))
    assert local == {"all", "select_architectures", "collect_results", "table", "table6", "table7", "lead_table",
                     "figure", "run_config"}
    assert not {name.removeprefix("rule_") for name in submitted.values()} & local
    assert "group_probe_embed_linear_probe" in submitted.values()
    for name in sorted((demo_results / "tables").iterdir()) + sorted((demo_results / "figures").iterdir()):
        assert (results / name.parent.name / name.name).stat().st_size > 0, name


def _sbatch(*args) -> str:
    out = subprocess.run(["sbatch", "--parsable", f"--partition={PARTITION}", f"--chdir={REPO}", *args],
                         capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip().split(";")[0]


def _weights(out):
    from safetensors.torch import load_file
    return load_file(str(out / "encoder.safetensors"))


def test_preempted_pretraining_resumes_to_the_same_weights(slurm, demo_shards, tmp_path):
    settings = tiny_pretrain_settings()
    for name in ("straight", "preempted"):                 # each rank's job file, as ecgfm.launch writes it
        write_job(tmp_path / f"{name}.json", settings, [demo_shards], tmp_path / name)
    job = f"exec {sys.executable} -m ecgfm.launch {tmp_path}/{{name}}.json"
    env = f"--export=ALL,PYTHONPATH={REPO}"
    straight = tmp_path / "straight"
    done = _wait_for_job(_sbatch(env, "-c1", "--mem=2000", f"--output={tmp_path}/straight.log",
                                 f"--wrap={job.format(name='straight')}"))
    assert done["JobState"] == "COMPLETED", (tmp_path / "straight.log").read_text()[-2000:]

    out = tmp_path / "preempted"
    job_id = _sbatch(env, "-c1", "--mem=2000", f"--output={tmp_path}/first.log", f"--wrap={job.format(name='preempted')}")
    deadline = time.time() + 180
    while not ((out / "metrics.csv").exists() and len((out / "metrics.csv").read_text().splitlines()) > 3):
        assert time.time() < deadline and _jobs()[job_id]["JobState"] in ("PENDING", "RUNNING")
        time.sleep(0.2)
    # what SLURM sends before a time limit (--signal=USR1@600) or on `scancel --signal`
    subprocess.run(["scancel", "--batch", "--signal=USR1", job_id], check=True)
    first = _wait_for_job(job_id)
    assert first["ExitCode"] == "75:0", (first, (tmp_path / "first.log").read_text()[-2000:])
    state = torch.load(out / "checkpoints" / "last.pt", weights_only=False)
    assert 3 <= state["step"] < settings["steps"]

    second = _wait_for_job(_sbatch(env, "-c1", "--mem=2000", f"--output={tmp_path}/second.log",
                                   f"--wrap={job.format(name='preempted')}"))
    assert second["JobState"] == "COMPLETED", (tmp_path / "second.log").read_text()[-2000:]
    assert f"resumed from {out / 'checkpoints' / 'last.pt'} at step {state['step']}" in \
        (tmp_path / "second.log").read_text()
    reference = _weights(straight)
    for key, value in _weights(out).items():
        assert torch.equal(value, reference[key]), key
