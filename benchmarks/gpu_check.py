"""The first minutes on a GPU: the risky questions of the GPU path, answered before a long run.

    python benchmarks/gpu_check.py [--model HL_p60_d2_e512] [--batch 256] [--steps 60] [--log-every 30]
                                   [--compile reduce-overhead] [--backend inductor]

(``benchmarks/one_gpu.sh check`` runs it, then the pretraining tests on CUDA.) Each part prints one
line, ``check <part>: ok|FAILED|skipped ...`` with what it measured; the exit code is 1 when a
part failed.

* copies: the host time of queuing a non-blocking copy to the GPU, while the GPU is busy with
  queued matrix products, of one batch of anchors (--batch x 12 x 2,500 float16) held three
  ways: contiguous in pinned memory (what the in-memory corpus and the loader hand over), as a
  strided view of pinned memory (every other record: how anchors were handed before), and in
  pageable memory. A copy that returns at once costs microseconds; one that waits for the GPU
  costs about the busy time. ok: the contiguous pinned copy did not wait.
* syncs: one eager trainer step on batches from the in-memory corpus in GPU memory, the batch's
  gather and the log's copy included, under ``torch.cuda.set_sync_debug_mode("error")``: any host
  synchronisation inside raises. ok: none.
* pinned: what a 1.2 GiB pinned allocation takes from PyTorch's caching host allocator
  (``torch.cuda.host_memory_stats``; a power of two is expected), and the same size registered in
  place as the in-memory corpus does (``ecgfm.pretrain_data.register_pinned``). ok: the
  registered memory is pinned and takes nothing from the allocator.
* compiled: the real trainer with ``pretrain.compile`` --compile (reduce-overhead: CUDA graphs)
  for --steps steps with a flush every --log-every steps, from GPU memory, on a synthetic corpus.
  ok: every step's logged losses are its own (finite, all different), none overwritten.

On a CPU the first three need CUDA and say so; the compiled run runs there too (inductor makes
C++ instead of Triton; no CUDA graphs), which is what ``one_gpu.sh preflight`` checks.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from pretrain import settings_of, step_parts, write_corpus  # noqa: E402  (benchmarks/pretrain.py)

from ecgfm.config import load_config  # noqa: E402
from ecgfm.pretrain import PARTS, train_step  # noqa: E402

GIB = 2**30


def report(part: str, ok: bool | None, text: str) -> bool:
    print(f"check {part}: {'skipped' if ok is None else 'ok' if ok else 'FAILED'}: {text}", flush=True)
    return ok is not False


def check_copies(batch: int, device) -> bool:
    if device.type != "cuda":
        return report("copies", None, "needs CUDA")
    shape = (batch, 12, 2500)
    pinned = torch.randn(shape).half().pin_memory()
    strided = torch.randn((batch, 2, *shape[1:])).half().pin_memory()[:, 0]
    pageable = torch.randn(shape).half()
    busy = torch.randn(8192, 8192, device=device, dtype=torch.bfloat16)

    def host_ms(source):
        torch.cuda.synchronize()
        t = time.perf_counter()
        for _ in range(40):                        # about 50 ms of queued GPU work on an H100
            busy @ busy
        queued = time.perf_counter()
        source.to(device, non_blocking=True)
        copied = time.perf_counter()
        torch.cuda.synchronize()
        return (copied - queued) * 1e3, (time.perf_counter() - t) * 1e3

    host_ms(pinned)                                # warm-up
    got = {name: host_ms(source) for name, source in
           (("contiguous pinned", pinned), ("strided pinned", strided), ("pageable", pageable))}
    text = "; ".join(f"{name} {host:.2f} ms of host time (GPU busy {total:.0f} ms)"
                     for name, (host, total) in got.items())
    return report("copies", got["contiguous pinned"][0] < 0.1 * got["contiguous pinned"][1],
                  f"{pageable.nbytes / 1e6:.1f} MB: {text}")


def check_syncs(settings: dict, corpus_dir: Path, device) -> bool:
    from ecgfm.pretrain_data import InMemoryCorpus, PatientPairSampler, PretrainCorpus
    corpus = PretrainCorpus([str(corpus_dir)])
    memory = InMemoryCorpus(corpus, device)
    sampler = PatientPairSampler(corpus.patient, corpus.shard, settings["batch_size"], 0)
    batches = memory.batches(sampler)
    objective, module, optimizer, _, _, gen, autocast = step_parts(settings, settings["batch_size"], device)
    logged = torch.zeros((1, 2 + len(PARTS)), device=device)   # loss, objective, parts

    def step():
        batch = next(batches)
        x = batch["anchor"].to(device, non_blocking=True)
        partner = batch["partner"].to(device, non_blocking=True)
        gen.manual_seed(1)
        logged[0].copy_(train_step(objective, module, optimizer, x, partner, gen, autocast, settings["grad_clip"]))

    step()                                         # the optimizer's state, cuBLAS handles: made here
    if device.type != "cuda":
        step()
        return report("syncs", None, "needs CUDA (an eager step ran on the CPU)")
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        step()
        found = None
    except RuntimeError as error:
        found = str(error).splitlines()[0]
    finally:
        torch.cuda.set_sync_debug_mode("default")
    return report("syncs", found is None, "no host synchronisation in an eager step" if found is None
                  else f"a host synchronisation inside the step: {found}")


def check_pinned(device) -> bool:
    if device.type != "cuda":
        return report("pinned", None, "needs CUDA")
    from ecgfm.pretrain_data import pinned_block_bytes, register_pinned
    size = int(1.2 * GIB)

    def allocated():
        return torch.cuda.host_memory_stats().get("allocated_bytes.current", 0)

    before = allocated()
    block = torch.empty(size, dtype=torch.uint8, pin_memory=True)
    took = allocated() - before
    if "allocated_bytes.current" not in torch.cuda.host_memory_stats():
        return report("pinned", False, "torch.cuda.host_memory_stats() has no allocated_bytes.current: "
                      f"{sorted(torch.cuda.host_memory_stats())[:8]}")
    del block

    class Owner:
        pass

    owner, before = Owner(), allocated()
    registered = torch.empty(size, dtype=torch.uint8)
    register_pinned(owner, registered)
    extra = allocated() - before
    ok = registered.is_pinned() and extra == 0
    del owner, registered
    return report("pinned", ok, f"pin_memory of {size / GIB:.2f} GiB took {took / GIB:.2f} GiB of the allocator "
                  f"(a power of two: {pinned_block_bytes(size) / GIB:.2f}); registered in place: pinned "
                  f"{ok}, {extra / GIB:.2f} GiB of the allocator")


def check_compiled(settings: dict, corpus_dir: Path, out: Path, device) -> bool:
    import numpy as np
    import pandas as pd

    from ecgfm.pretrain import pretrain
    t = time.perf_counter()
    pretrain({**settings, "corpus_memory": {"mode": "device"}}, [str(corpus_dir)], out, progress=False)
    wall = time.perf_counter() - t
    torch._dynamo.reset()
    m = pd.read_csv(out / "metrics.csv")
    steps = settings["steps"]
    own = m["step"].tolist() == list(range(1, steps + 1)) and bool(np.isfinite(m["loss"]).all()) \
        and len(set(m["loss"])) == steps
    return report("compiled", own, f"{steps} steps, a flush every {settings['log_every']}, compile "
                  f"{settings['compile']['mode']} ({settings['compile']['backend']}) on {device.type}: "
                  f"{wall:.1f} s with compilation; {len(set(m['loss']))} distinct finite losses logged")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="HL_p60_d2_e512")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--records", type=int, default=2000)
    ap.add_argument("--patients", type=int, default=1500)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--log-every", type=int, default=30)
    ap.add_argument("--compile", default="reduce-overhead", choices=["none", "default", "reduce-overhead",
                                                                      "max-autotune"])
    ap.add_argument("--backend", default="inductor")
    args = ap.parse_args(argv)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    print(f"device: {torch.cuda.get_device_name(device) if device.type == 'cuda' else 'CPU'}; "
          f"torch {torch.__version__}", flush=True)
    settings = settings_of(load_config(Path(__file__).resolve().parents[1] / "config.yaml"), args.model)
    settings.update(batch_size=args.batch, steps=args.steps, warmup_steps=max(1, args.steps // 10),
                    log_every=args.log_every, checkpoint_every=args.steps, num_workers=0, tensorboard=False,
                    compile={"mode": args.compile, "backend": args.backend})
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        corpus = write_corpus(Path(tmp) / "corpus", args.records, args.patients)
        results.append(check_copies(args.batch, device))
        results.append(check_syncs({**settings, "compile": {"mode": "none"}}, corpus, device))
        results.append(check_pinned(device))
        results.append(check_compiled(settings, corpus, Path(tmp) / "compiled", device))
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
