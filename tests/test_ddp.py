"""InfoNCE with negatives gathered across ranks (gloo, 2 processes on CPU) and the trainer under torchrun."""
import json
import os
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
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    b = z1_all.shape[0] // world
    z1 = z1_all[rank * b : (rank + 1) * b].clone().requires_grad_(True)
    z2 = z2_all[rank * b : (rank + 1) * b].clone().requires_grad_(True)
    loss = info_nce(z1, z2, 0.2)
    loss.backward()
    torch.save({"loss": loss.detach(), "g1": z1.grad, "g2": z2.grad}, f"{out}/rank{rank}.pt")
    dist.barrier()                      # neither rank tears down while the other still communicates
    dist.destroy_process_group()
    exit_now(0)                         # not through interpreter shutdown: see ecgfm.launch.main


def test_gathered_negatives_give_the_full_batch_gradient(tmp_path):
    torch.manual_seed(0)
    z1 = torch.nn.functional.normalize(torch.randn(8, 5), dim=1)
    z2 = torch.nn.functional.normalize(torch.randn(8, 5), dim=1)
    mp.spawn(_worker, args=(2, str(tmp_path / "init"), z1, z2, str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
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


def test_launched_ranks_checkpoint_on_sigusr1_and_resume_to_the_same_weights(demo_shards, tmp_path):
    from safetensors.torch import load_file
    settings = tiny_pretrain_settings(steps=8, batch_size=8, checkpoint_every=2)
    straight = _launch_job(settings, tmp_path / "straight", demo_shards)
    assert straight.wait(timeout=300) == 0, straight.stdout.read()[-3000:]

    out = tmp_path / "stopped"
    job = _launch_job(settings, out, demo_shards)
    deadline = time.time() + 240
    while not ((out / "metrics.csv").exists() and len((out / "metrics.csv").read_text().splitlines()) > 2):
        assert job.poll() is None and time.time() < deadline, job.stdout.read()[-3000:] if job.poll() else "slow"
        time.sleep(0.1)
    job.send_signal(signal.SIGUSR1)                  # to the job's process, as SLURM would
    assert job.wait(timeout=120) == 75, job.stdout.read()[-3000:]
    step = torch.load(out / "checkpoints" / "last.pt", weights_only=False)["step"]
    assert 2 <= step < 8
    resumed = _launch_job(settings, out, demo_shards)
    assert resumed.wait(timeout=300) == 0
    assert f"resumed from {out / 'checkpoints' / 'last.pt'} at step {step}" in resumed.stdout.read()
    assert json.loads((out / "config.json").read_text())["world_size"] == 2
    reference = load_file(str(tmp_path / "straight" / "encoder.safetensors"))
    for key, value in load_file(str(out / "encoder.safetensors")).items():
        assert torch.equal(value, reference[key]), key
