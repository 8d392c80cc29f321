"""InfoNCE with negatives gathered across ranks (gloo, 2 processes on CPU) and the trainer under torchrun."""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from conftest import tiny_pretrain_settings
from ecgfm.launch import exit_now, write_job
from ecgfm.objectives import info_nce

HERE = Path(__file__).parent


def _worker(rank, world, init_file, z1_all, z2_all, out):
    import torch.distributed as dist
    from ecgfm.model import Architecture, ECGFoundationModel
    from ecgfm.pretrain import PretrainObjective
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    b = z1_all.shape[0] // world
    z1 = z1_all[rank * b : (rank + 1) * b].clone().requires_grad_(True)
    z2 = z2_all[rank * b : (rank + 1) * b].clone().requires_grad_(True)
    loss = info_nce(z1, z2, 0.2)
    loss.backward()
    # the HL step's forward under the group (its InfoNCE terms gather across the ranks), as the
    # trainer compiles it: wrapped in DDP
    settings = tiny_pretrain_settings("HL")
    torch.manual_seed(0)
    objective = PretrainObjective(ECGFoundationModel(Architecture(**settings["architecture"])), settings)
    x, partner = torch.randn(4, 12, 2500), torch.randn(4, 12, 2500).half()
    draws = objective.draw(x, torch.Generator().manual_seed(rank))
    explained = torch._dynamo.explain(torch.nn.parallel.DistributedDataParallel(objective))(x, partner, *draws)
    graphs = (explained.graph_count, explained.graph_break_count, [str(r.reason) for r in explained.break_reasons])
    torch.save({"loss": loss.detach(), "g1": z1.grad, "g2": z2.grad, "graphs": graphs}, f"{out}/rank{rank}.pt")
    dist.barrier()                      # neither rank tears down while the other still communicates
    dist.destroy_process_group()
    exit_now(0)                         # not through interpreter shutdown: see ecgfm.launch.main


@pytest.fixture(scope="module")
def two_gloo_ranks(tmp_path_factory):
    """Two gloo processes: each computes InfoNCE on its half of z1, z2 and explains the HL step's
    forward under the group. Returns (z1, z2, each rank's results)."""
    out = tmp_path_factory.mktemp("gloo")
    torch.manual_seed(0)
    z1 = torch.nn.functional.normalize(torch.randn(8, 5), dim=1)
    z2 = torch.nn.functional.normalize(torch.randn(8, 5), dim=1)
    mp.spawn(_worker, args=(2, str(out / "init"), z1, z2, str(out)), nprocs=2, join=True)
    return z1, z2, [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(2)]


def test_the_step_forward_is_one_graph_with_negatives_gathered_across_ranks(two_gloo_ranks):
    """torch.distributed.nn.functional.all_gather split this forward into 11 graphs (10 breaks);
    the functional collective is captured inside the one graph, DDP's wrapper included."""
    for graph_count, break_count, reasons in (r["graphs"] for r in two_gloo_ranks[2]):
        assert (graph_count, break_count) == (1, 0), reasons


def test_gathered_negatives_give_the_full_batch_gradient(two_gloo_ranks):
    z1, z2, ranks = two_gloo_ranks
    ref1, ref2 = z1.clone().requires_grad_(True), z2.clone().requires_grad_(True)
    full = info_nce(ref1, ref2, 0.2)           # one process, the whole batch as negatives
    full.backward()
    assert torch.allclose((ranks[0]["loss"] + ranks[1]["loss"]) / 2, full, atol=1e-6)
    # each rank's backward reaches the rows it owns from every rank's loss: the sum over ranks,
    # i.e. world_size x the gradient of the full-batch mean (DDP then averages by world_size)
    g1 = torch.cat([ranks[0]["g1"], ranks[1]["g1"]])
    g2 = torch.cat([ranks[0]["g2"], ranks[1]["g2"]])
    assert torch.allclose(g1, 2 * ref1.grad, atol=1e-6)
    assert torch.allclose(g2, 2 * ref2.grad, atol=1e-6)


def test_trainer_runs_under_torchrun_with_two_cpu_processes(demo_shards, tmp_path):
    torchrun = shutil.which("torchrun")
    if torchrun is None:
        pytest.skip("torchrun is not on PATH")
    settings = tiny_pretrain_settings(steps=6, batch_size=8, checkpoint_every=3)
    job = write_job(tmp_path / "launch.json", settings, [demo_shards], tmp_path / "out")
    env = {**os.environ, "PYTHONPATH": str(HERE.parent), "OMP_NUM_THREADS": "1"}
    # each rank's entry point as ecgfm.launch starts it
    run = subprocess.run([torchrun, "--standalone", "--nproc_per_node", "2", "--module", "ecgfm.launch",
                          str(job)], env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert config["world_size"] == 2
    assert len((tmp_path / "out" / "metrics.csv").read_text().strip().splitlines()) == 7


def _launch_job(settings, out, shards):
    """One pretraining job as the workflow runs it with processes: 2 (ecgfm.launch -> torchrun)."""
    script = ("import sys, json; from ecgfm.launch import launch; "
              f"sys.exit(launch(json.load(open({str(out) + '.json'!r})), [{str(shards)!r}], {str(out)!r}, "
              "processes=2, threads=2))")
    Path(str(out) + ".json").write_text(json.dumps(settings))
    env = {**os.environ, "PYTHONPATH": str(HERE.parent)}
    return subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


DDP_SETTINGS = {"steps": 8, "batch_size": 8, "checkpoint_every": 2}


@pytest.fixture(scope="module")
def straight_ddp_weights(demo_shards, tmp_path_factory):
    """The encoder of an uninterrupted two-rank run of DDP_SETTINGS."""
    from safetensors.torch import load_file
    out = tmp_path_factory.mktemp("ddp") / "straight"
    straight = _launch_job(tiny_pretrain_settings(**DDP_SETTINGS), out, demo_shards)
    assert straight.wait(timeout=300) == 0, straight.stdout.read()[-3000:]
    return load_file(str(out / "encoder.safetensors"))


def test_launched_ranks_checkpoint_on_sigusr1_and_resume_to_the_same_weights(demo_shards, tmp_path,
                                                                              straight_ddp_weights):
    from safetensors.torch import load_file
    settings = tiny_pretrain_settings(**DDP_SETTINGS)
    out = tmp_path / "stopped"
    job = _launch_job(settings, out, demo_shards)
    deadline = time.time() + 240
    while not ((out / "metrics.csv").exists() and len((out / "metrics.csv").read_text().splitlines()) > 2):
        assert job.poll() is None and time.time() < deadline, job.stdout.read()[-3000:] if job.poll() else "slow"
        time.sleep(0.1)
    job.send_signal(signal.SIGUSR1)                  # to the job's process, as SLURM would
    assert job.wait(timeout=120) == 75, job.stdout.read()[-3000:]
    step = torch.load(out / "checkpoints" / "last.pt", map_location="cpu", weights_only=False)["step"]
    assert 2 <= step < 8
    resumed = _launch_job(settings, out, demo_shards)
    assert resumed.wait(timeout=300) == 0
    assert f"resumed from {out / 'checkpoints' / 'last.pt'} at step {step}" in resumed.stdout.read()
    assert json.loads((out / "config.json").read_text())["world_size"] == 2
    for key, value in load_file(str(out / "encoder.safetensors")).items():
        assert torch.equal(value, straight_ddp_weights[key]), key


def _children(pid: int) -> dict:
    """{RANK: pid} of the processes whose parent is ``pid`` (torchrun's ranks), read from /proc."""
    ranks = {}
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                env = dict(v.split("=", 1) for v in (entry / "environ").read_text().split("\0") if "=" in v)
                if "RANK" in env:
                    ranks[int(env["RANK"])] = int(entry.name)
        except (OSError, ValueError):
            continue                                 # a process that ended meanwhile
    return ranks


def test_a_signal_to_one_rank_stops_every_rank_at_the_same_step(demo_shards, tmp_path, straight_ddp_weights):
    """Each rank catches its own SIGTERM/SIGUSR1; the stop is decided by all ranks at a flush, so a
    signal that reaches one rank only stops both at the same step, rank 0 writes the checkpoint
    first, and the resumed run ends with the uninterrupted run's weights, bit for bit. (A rank that
    left alone would leave the other waiting on its next collective.)"""
    from safetensors.torch import load_file
    torchrun = shutil.which("torchrun")
    if torchrun is None:
        pytest.skip("torchrun is not on PATH")
    out = tmp_path / "one-rank"
    job = write_job(tmp_path / "launch.json", tiny_pretrain_settings(**DDP_SETTINGS), [demo_shards], out)
    env = {**os.environ, "PYTHONPATH": str(HERE.parent), "OMP_NUM_THREADS": "1"}
    cmd = [torchrun, "--standalone", "--nproc_per_node", "2", "--module", "ecgfm.launch", str(job)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 240
    while not ((out / "metrics.csv").exists() and len((out / "metrics.csv").read_text().splitlines()) > 2):
        assert proc.poll() is None and time.time() < deadline, proc.stdout.read()[-3000:] if proc.poll() else "slow"
        time.sleep(0.05)
    os.kill(_children(proc.pid)[1], signal.SIGUSR1)          # rank 1 only
    proc.wait(timeout=120)
    log = proc.stdout.read()
    stops = dict(re.findall(r"rank (\d): (?:signal \d+|a stop signal on another rank): "
                            r"checkpoint written at step (\d+)", log))
    assert set(stops) == {"0", "1"} and stops["0"] == stops["1"], log[-3000:]
    step = int(stops["0"])
    state = torch.load(out / "checkpoints" / "last.pt", map_location="cpu", weights_only=False)
    assert 2 <= step < 8 and state["step"] == step
    resumed = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0 and f"at step {step}" in resumed.stderr, resumed.stderr[-3000:]
    for key, value in load_file(str(out / "encoder.safetensors")).items():
        assert torch.equal(value, straight_ddp_weights[key]), key
