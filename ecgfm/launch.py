"""One pretraining job on several processes: torchrun inside the job's own allocation.

A job that asks for N GPUs (``pretrain.resources.gpus``), or for N processes explicitly
(``pretrain.resources.processes``, which also runs N CPU processes with the gloo backend),
starts ``torchrun --standalone --nproc_per_node N`` on the node it was given; each rank runs
:func:`ecgfm.pretrain.pretrain`, which initialises DDP from torchrun's environment (NCCL on GPUs,
gloo on CPU). The job's process stays the parent: SIGTERM and SIGUSR1 (SLURM's warning before a
time limit, ``scancel --signal``, preemption) are passed to torchrun as SIGTERM, which passes it
to every rank; the ranks agree at their next flush to stop at the same step (a signal that reached
one rank only stops them all there), rank 0 checkpoints, they exit 75, and so does the job, so
that its retry resumes. With fewer GPUs on the node than processes the ranks train on the CPU.
"""
from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

from .pretrain import EXIT_RESUBMIT, pretrain


def processes_for(resources: dict) -> int:
    """Processes of one pretraining job: ``processes`` when given, else one per GPU, else one."""
    return max(1, int(resources.get("processes") or resources.get("gpus") or 1))


def write_job(path, settings: dict, source_dirs: list, out_dir, *, ptbxl_dir=None,
              provenance: dict | None = None) -> Path:
    """The job file that each rank's :func:`main` reads: ``pretrain``'s arguments as JSON."""
    path = Path(path)
    path.write_text(json.dumps({"settings": settings, "sources": [str(s) for s in source_dirs],
                                "out_dir": str(out_dir), "ptbxl_dir": ptbxl_dir, "provenance": provenance}))
    return path


def launch(settings: dict, source_dirs: list, out_dir, *, processes: int, threads: int = 1,
           ptbxl_dir=None, provenance: dict | None = None) -> int:
    """Run the job as ``processes`` torchrun ranks; returns the job's exit code (75: resubmit)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    job = write_job(out / "launch.json", settings, source_dirs, out, ptbxl_dir=ptbxl_dir, provenance=provenance)
    env = {**os.environ, "OMP_NUM_THREADS": str(max(1, threads // processes))}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
           "--module", "ecgfm.launch", str(job)]
    proc = subprocess.Popen(cmd, env=env)
    stopped = []

    def forward(signum, frame):
        stopped.append(signum)
        proc.send_signal(signal.SIGTERM)          # torchrun passes SIGTERM on to every rank

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGUSR1)}
    try:
        code = proc.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if code != 0 and stopped and (out / "checkpoints" / "last.pt").exists():
        return EXIT_RESUBMIT
    return code


def main(argv=None) -> None:
    """The entry point of each rank (``python -m ecgfm.launch launch.json`` under torchrun).

    A rank that has finished, or checkpointed for resubmission, leaves with ``os._exit`` and not
    through the interpreter's shutdown. In that shutdown a gloo worker thread may still be
    destroying a finished collective whose saved thread-local state holds a Python object; it
    then needs the GIL, and a thread that asks for the GIL while the interpreter finalizes is
    ended by pthread_exit inside a C++ destructor: std::terminate, SIGABRT, and a finished job
    reported as failed. Seen with torch 2.13 (CPU, gloo) in the two-rank InfoNCE test of
    tests/test_ddp.py, in 4 of about 100 runs under CPU load and 0 of 120 with this exit; the
    core dump's stack runs from ProcessGroupGloo::runLoop through ~AsyncWork to take_gil.
    An exception other than SystemExit still propagates with its traceback.
    """
    import torch
    job = json.loads(Path((argv or sys.argv[1:])[0]).read_text())
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    rank = int(os.environ.get("RANK", "0"))
    try:
        pretrain(job["settings"], job["sources"], job["out_dir"], ptbxl_dir=job["ptbxl_dir"],
                 provenance=job["provenance"], progress=rank == 0)
        code = 0
    except SystemExit as stop:                      # EXIT_RESUBMIT after a stop signal
        code = 0 if stop.code is None else stop.code if isinstance(stop.code, int) else 1
    exit_now(code)


def exit_now(code: int) -> None:
    """End the process with ``code`` once its output is flushed, skipping interpreter shutdown."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
