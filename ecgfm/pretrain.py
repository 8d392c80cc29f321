"""Pretraining one model of the grid: GL, CL or HL at one (patch, depth, width).

One loop, plainly visible (in the manner of nanoGPT's train.py): settings, data, model,
optimizer, then the loop with logging, checkpoints and the stop signals.

* Objectives by weights (config ``pretrain.objectives``): GL = reconstruction only,
  CL = patient-level + sample-level InfoNCE, HL = all three (equation 3). With
  ``loss_balance: running_mean`` each part is divided by its own running mean before weighting,
  so that HL's 1:1:1 does not leave one objective in charge (see ``PretrainObjective._balanced``).
* AdamW (fused on CUDA), linear warmup then cosine decay, gradient clipping, bf16 autocast on
  CUDA (fp32 on CPU).
* The corpus streams from the shards through DataLoader workers, or (``corpus_memory``) sits
  whole in GPU or pinned host memory when what that really takes fits a budget
  (``pretrain_data.corpus_memory_needs``), each batch gathered by index; records stay float16
  until they are on the device, and anchors and partners reach it as two contiguous blocks. Both
  give the same batches.
* Every random draw of a step (augmentations, masks) comes from a generator seeded by
  (seed, step, rank), and the data order from (seed, epoch): a resumed run is the same run. The
  draws are made before the forward (``PretrainObjective.draw``), so that the forward, views
  included, is one graph for ``pretrain.compile``, written without a host synchronisation.
* A checkpoint (model, optimizer, scheduler, sampler position, RNG states) every
  ``checkpoint_every`` steps and at the end, written to a temporary name and renamed. Rerunning
  resumes from it by itself. SIGTERM or SIGUSR1 (SLURM's warning before a time limit or a
  preemption) -> checkpoint at the end of the current step (under DDP: at the next flush, decided
  by every rank together, so that all stop at the same step), then exit with code 75
  (EX_TEMPFAIL) so that the scheduler's retry resumes.
* A non-finite loss stops the run with ``NonFiniteLoss``; the last checkpoint stays as it was.
* Metrics per step to ``metrics.csv`` (and TensorBoard when installed), a progress bar, samples/s.
* DDP under torchrun: each rank draws its slice of every global batch; InfoNCE negatives are
  gathered across ranks with gradients (``ecgfm.objectives.gather_with_grad``, a functional
  collective that the compiled step holds in its one graph). NCCL with one GPU per rank; gloo on
  the CPU when the node has fewer GPUs than ranks.
"""
from __future__ import annotations

import csv
import json
import math
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .augment import augment_batch, draw
from .model import Architecture, ECGFoundationModel, attention_backend, autocast_for, crop_to_patches
from .objectives import UncertaintyWeights, contrastive_views, hybrid_loss, info_nce, reconstruction_loss
from .pretrain_data import (InMemoryCorpus, PairDataset, PatientPairSampler, PretrainCorpus,
                            choose_corpus_mode)

EXIT_RESUBMIT = 75
PARTS = ("recon", "patient", "sample")


class NonFiniteLoss(FloatingPointError):
    pass


class PretrainObjective(nn.Module):
    """Model + loss in one ``forward`` (so DDP sees one forward per step)."""

    def __init__(self, model: ECGFoundationModel, settings: dict):
        super().__init__()
        self.model, self.s = model, settings
        weights = settings["weights"]
        self.learned = UncertaintyWeights([p for p in PARTS if weights[p]]) \
            if settings.get("dynamic_weights") else None
        self.balance = settings.get("loss_balance", "none")
        if self.balance not in ("none", "running_mean"):
            raise ValueError(f"unknown loss_balance {self.balance!r}")
        # the running mean of each part (0: not seen yet); a buffer, so checkpoints carry it
        self.register_buffer("loss_scale", torch.zeros(len(PARTS)))

    @property
    def view_names(self) -> tuple:
        return contrastive_views(self.s["weights"])

    def draw(self, x, gen: torch.Generator):
        """Every random number of one step, from ``gen``: the views' tables (``augment.draw``; None
        without views) and the masking noise [B, patches]. Kept out of ``forward`` so that a
        compiled forward holds no generator."""
        b, leads, length = x.shape
        names = self.view_names
        tables = draw(len(names) * b, leads, length, gen) if names else (None, None)
        noise = torch.rand((b, self.model.arch.n_patches), generator=gen, device=gen.device)
        return (*tables, noise)

    def forward(self, x, partner, uniform, normal, noise):
        """x [B, L, T] anchors, partner [B, L, T] (or None) another ECG of each anchor's patient,
        either as stored (float16) or float32; uniform, normal, noise from ``draw``. Returns the
        objective to minimise and, detached for the log, [raw sum, objective, *PARTS]: the raw sum is
        equation 3 on the parts as they are (what ``metrics.csv`` calls ``loss``), the objective that
        sum balanced or learned-weighted (its ``objective``); 0 for a part the method lacks."""
        s, w, parts = self.s, self.s["weights"], {}
        x = x.float()
        if w["recon"]:
            tokens, mask, restore = self.model.forward_encoder(x, s["mask_ratio"], noise)
            pred = self.model.forward_decoder(tokens, restore)
            target = self.model.patchify(crop_to_patches(x, self.model.arch.patch))
            parts["recon"] = reconstruction_loss(pred.float(), target, mask, s["recon_target"],
                                                 reduction=s.get("reconstruction", "mean"))
        names = self.view_names
        if names:
            sources = torch.cat([partner.float() if n == "c" else x for n in names])
            views = augment_batch(sources, uniform, normal, s["augment"], float(s["fs"]))
            z = dict(zip(names, self.model.project(views).float().chunk(len(names))))
            if w["sample"]:
                parts["sample"] = info_nce(z["a"], z["b"], s["temperature"])
            if w["patient"]:
                parts["patient"] = info_nce(z["a"], z["c"], s["temperature"])
        weighted = self._balanced(parts) if self.balance == "running_mean" else parts
        total = self.learned(weighted) if self.learned is not None else hybrid_loss(weighted, w)
        zero = total.new_zeros(())
        raw = hybrid_loss(parts, w)
        logged = torch.stack([raw.float(), total.float()] + [parts[p].float() if p in parts else zero
                                                              for p in PARTS])
        return total, logged.detach()

    def _balanced(self, parts: dict) -> dict:
        """Each part over its own running mean (detached): equation 3's 1:1:1 then weighs the
        objectives' relative changes equally, whatever their units (an L1 in mV is ~0.1, an
        InfoNCE ~3, and the raw sum lets the larger one decide alone). Stays on the device."""
        out = {}
        momentum = float(self.s.get("loss_balance_momentum", 0.99))
        for k, name in enumerate(PARTS):
            if name not in parts:
                continue
            if self.training:
                with torch.no_grad():
                    value, seen = parts[name].detach().float(), self.loss_scale[k]
                    self.loss_scale[k] = torch.where(seen > 0, momentum * seen + (1 - momentum) * value, value)
            out[name] = parts[name] / self.loss_scale[k].clamp_min(1e-12)
        return out


def make_optimizer(objective: nn.Module, settings: dict, device: torch.device) -> torch.optim.AdamW:
    """AdamW with weight decay on the matrices only; fused (one kernel for all parameters) on CUDA."""
    decay = [p for p in objective.parameters() if p.ndim >= 2]
    no_decay = [p for p in objective.parameters() if p.ndim < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": settings["weight_decay"]},
                              {"params": no_decay, "weight_decay": 0.0}],
                             lr=settings["lr"], betas=tuple(settings["betas"]), fused=device.type == "cuda")


def compile_step(module: nn.Module, compiled: dict | None) -> nn.Module:
    """``module`` under ``pretrain.compile``: itself when the mode is none, else torch.compile'd.
    The augmentations, the model and its three objectives, forward and backward (AOTAutograd), as
    one graph per model: the batch, the masked count and the views are fixed; the step's random
    numbers come in as tensors (PretrainObjective.draw). reduce-overhead adds CUDA graphs."""
    compiled = compiled or {}
    if compiled.get("mode", "none") == "none":
        return module
    backend = compiled.get("backend", "inductor")
    mode = None if compiled["mode"] == "default" or backend != "inductor" else compiled["mode"]
    return torch.compile(module, backend=backend, mode=mode, dynamic=False)


def train_step(objective: PretrainObjective, train_module: nn.Module, optimizer, x, partner, gen, autocast,
               grad_clip: float, mark=None):
    """One optimizer step: the step's random numbers, the forward (``train_module``: the objective,
    or its DDP or compiled wrapper; attention on ``pretrain.attention``'s backend), backward,
    clipping, AdamW. Returns the detached losses for the log, left on the device (they may live
    in memory that the next step overwrites: copy them to keep them). ``mark(section)``, when
    given, is called as each section begins (the benchmark counts operators per section with it)."""
    mark = mark or (lambda section: None)
    mark("draws")
    draws = objective.draw(x, gen)
    mark("forward")
    with autocast, attention_backend(objective.s.get("attention", "auto")):
        loss, losses = train_module(x, partner, *draws)
    mark("backward")
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    mark("clip + optimizer")
    if grad_clip:
        nn.utils.clip_grad_norm_(objective.parameters(), grad_clip)
    optimizer.step()
    return losses


def lr_at(step: int, base_lr: float, warmup: int, total: int, min_ratio: float = 0.01) -> float:
    """Linear warmup to ``base_lr``, then cosine decay to ``min_ratio * base_lr`` at ``total``."""
    if step < warmup:
        return base_lr * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return base_lr * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def git_commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).parent, timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def _atomic_save(obj, path: Path):
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


# settings that change how a run executes but not what it computes
EXECUTION_ONLY = ("num_workers", "log_every", "checkpoint_every", "tensorboard", "name", "corpus_memory",
                  "compile", "attention")


def training_identity(settings: dict) -> dict:
    """What a checkpoint must have been made under for a run to resume from it."""
    return json.loads(json.dumps({k: v for k, v in settings.items() if k not in EXECUTION_ONLY},
                                 sort_keys=True))


class _StopFlag:
    """Set by SIGTERM/SIGUSR1 while the loop runs; the loop then checkpoints and exits at the end of
    the step. The process's own handlers come back afterwards (``restore``): a caller that trains in
    its own process (a test, a notebook) keeps being killable, and so do the processes it forks."""

    SIGNALS = (signal.SIGTERM, signal.SIGUSR1)

    def __init__(self):
        self.signum = None
        self.previous = {sig: signal.signal(sig, self._handle) for sig in self.SIGNALS}

    def _handle(self, signum, frame):
        self.signum = signum

    def restore(self):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


def training_device(local_rank: int, local_ranks: int) -> torch.device:
    """cuda:LOCAL_RANK when every rank of this node has a GPU of its own, else the CPU (DDP then
    runs on gloo): more processes than GPUs (``pretrain.resources.processes`` on a smaller node, a
    test's two ranks on a one-GPU machine) would otherwise ask for a device that does not exist."""
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if gpus and local_ranks <= gpus:
        return torch.device("cuda", local_rank)
    if gpus and local_rank == 0:
        print(f"{local_ranks} processes on this node and {gpus} GPU(s): training on the CPU (gloo)",
              file=sys.stderr)
    return torch.device("cpu")


CUDA_GRAPH_MODES = ("reduce-overhead", "max-autotune")     # pretrain.compile modes that add CUDA graphs


def uses_cuda_graphs(settings: dict, device) -> bool:
    """Whether the compiled step replays CUDA graphs (whose outputs the next replay overwrites)."""
    return device.type == "cuda" and (settings.get("compile") or {}).get("mode") in CUDA_GRAPH_MODES


def pretrain(settings: dict, source_dirs: list, out_dir, ptbxl_dir=None, provenance: dict | None = None,
             progress: bool = True) -> dict:
    """Train one model; writes encoder.safetensors, config.json, metrics.csv, checkpoints/last.pt."""
    # --- distributed, device, seeds ---------------------------------------------------------------
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    local_ranks = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    device = training_device(int(os.environ.get("LOCAL_RANK", "0")), local_ranks)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if distributed:
        import torch.distributed as dist
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        rank, world = dist.get_rank(), dist.get_world_size()
    else:
        rank, world = 0, 1
    seed = int(settings["seed"])
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)
    out = Path(out_dir)
    ckpt_dir = out / "checkpoints"
    if rank == 0:
        ckpt_dir.mkdir(parents=True, exist_ok=True)

    # --- data ---------------------------------------------------------------------------------------
    corpus = PretrainCorpus(source_dirs, ptbxl_dir, settings.get("include_ptbxl_folds", ()))
    sampler = PatientPairSampler(corpus.patient, corpus.shard, settings["batch_size"], seed,
                                 settings["block_shards"], rank, world)

    # --- model, optimizer ---------------------------------------------------------------------------
    arch = Architecture(**settings["architecture"])
    model = ECGFoundationModel(arch).to(device)
    objective = PretrainObjective(model, settings).to(device)
    optimizer = make_optimizer(objective, settings, device)
    steps, warmup = int(settings["steps"]), int(settings["warmup_steps"])
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_at(step, 1.0, warmup, steps))
    train_module = objective
    if distributed:
        unused = not all(settings["weights"][p] for p in PARTS)
        train_module = nn.parallel.DistributedDataParallel(
            objective, device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=unused)
    train_module = compile_step(train_module, settings.get("compile"))

    # --- resume -------------------------------------------------------------------------------------
    step = 0
    last = ckpt_dir / "last.pt"
    state = torch.load(last, map_location=device, weights_only=False) if last.exists() else None
    if state is not None and state.get("settings") != training_identity(settings):
        # made under other settings (a rerun after a config change): resuming would silently mix
        # two runs, so start over and keep the old checkpoint beside, renamed
        if distributed:
            dist.barrier()                               # every rank has read it before the rename
        if rank == 0:
            os.replace(last, ckpt_dir / "last.stale.pt")
        print(f"{last} was made under other settings: kept as last.stale.pt, starting from step 0",
              file=sys.stderr)
        state = None
    if state is not None:
        objective.load_state_dict(state["objective"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        sampler.load_state_dict(state["sampler"])
        torch.set_rng_state(state["rng"]["torch"])
        np.random.set_state(state["rng"]["numpy"])
        random.setstate(state["rng"]["python"])
        step = int(state["step"])
        print(f"resumed from {last} at step {step}", file=sys.stderr)
    metrics_path = out / "metrics.csv"
    # loss: equation 3's raw sum of the parts; objective: what the optimiser minimises (the same
    # unless loss_balance or dynamic_weights rescale the parts; docs/pretraining.md)
    fields = ["step", "epoch", "lr", "loss", "objective", *[f"loss_{p}" for p in PARTS], "samples_per_s",
              "elapsed_s"]
    if rank == 0:
        rows = []
        if step and metrics_path.exists():      # drop rows past the checkpoint: they are redone
            with open(metrics_path) as fh:
                rows = [r for r in csv.DictReader(fh) if int(r["step"]) <= step]
        with open(metrics_path, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fields)
            writer.writeheader()
            writer.writerows(rows)
    tb = None
    if rank == 0 and settings.get("tensorboard", True):
        try:
            from torch.utils.tensorboard import SummaryWriter
            tb = SummaryWriter(str(out / "tensorboard"))
        except ImportError:
            tb = None

    def save_checkpoint():
        if rank != 0:
            return
        _atomic_save({"objective": objective.state_dict(), "optimizer": optimizer.state_dict(),
                      "scheduler": scheduler.state_dict(), "sampler": sampler_state, "step": step,
                      "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state(),
                              "python": random.getstate()},
                      "architecture": arch.to_dict(), "settings": training_identity(settings)}, last)

    # Per-step losses stay on the device and are read back every ``log_every`` steps and before
    # every checkpoint: one synchronisation per flush instead of several per step. The finiteness
    # check runs at each flush, so a checkpoint is never written after a non-finite loss. Each
    # step's losses are copied into ``logged``, the loop's own buffer: a step's outputs may live in
    # memory that the next step overwrites (a CUDA graph replays into the same output memory).
    pending: list[tuple] = []      # (step index, epoch, lr); their losses: logged[:len(pending)]
    logged = torch.zeros((settings["log_every"], 2 + len(PARTS)), device=device)   # loss, objective, parts
    metrics_file = open(metrics_path, "a", newline="") if rank == 0 else None
    metrics_writer = csv.DictWriter(metrics_file, fields) if metrics_file else None
    window = {"start": time.perf_counter(), "samples": 0}

    def flush() -> bool:
        """The pending rows to the log; True when the run stops here. Under DDP every rank takes
        both decisions together (one all-reduce per flush): a stop signal that reached one rank,
        or a non-finite loss on one rank, stops every rank at the same step. A rank that left
        alone would leave the others waiting on a collective that never completes (under NCCL
        the host runs steps ahead of the device), until torchrun kills them, checkpoint lost."""
        values = logged[:len(pending)].tolist() if pending else []
        bad = next((k for k, row_values in enumerate(values)
                    if not all(math.isfinite(v) for v in row_values[:2])), None)
        stopping = stop.signum is not None
        if distributed:
            flags = torch.tensor([float(bad is not None), float(stopping)], device=device)
            dist.all_reduce(flags, op=dist.ReduceOp.MAX)
            any_bad, stopping = (bool(v) for v in flags.tolist())
        else:
            any_bad = bad is not None
        if bad is not None:
            index, row_values = pending[bad][0], values[bad]
            parts_text = {p: row_values[2 + k] for k, p in enumerate(PARTS)}
            raise NonFiniteLoss(f"loss is {row_values[0]} at step {index} ({parts_text}); "
                                f"the last good checkpoint ({last}) is kept")
        if any_bad:
            raise NonFiniteLoss(f"a non-finite loss on another rank by step {step - 1}; "
                                f"the last good checkpoint ({last}) is kept")
        if not pending:
            return stopping
        now = time.perf_counter()
        rate = round(window["samples"] / max(now - window["start"], 1e-9), 1)
        if rank == 0:
            for (index, epoch, lr), row_values in zip(pending, values):
                row = {"step": index + 1, "epoch": epoch, "lr": lr, "loss": row_values[0],
                       "objective": row_values[1],
                       **{f"loss_{p}": row_values[2 + k] if settings["weights"][p] else ""
                          for k, p in enumerate(PARTS)},
                       "samples_per_s": rate, "elapsed_s": round(now - started, 2)}
                metrics_writer.writerow(row)
                if tb is not None:
                    for key in ("loss", "objective", *[f"loss_{p}" for p in PARTS if settings["weights"][p]],
                                "lr", "samples_per_s"):
                        tb.add_scalar(key, row[key], index + 1)
            metrics_file.flush()
            if bar is not None:
                bar.update(len(pending))
                bar.set_postfix(loss=f"{values[-1][0]:.4f}", sps=rate)
        pending.clear()
        window.update(start=now, samples=0)
        return stopping

    # --- the loop -----------------------------------------------------------------------------------
    memory, corpus_bytes = settings.get("corpus_memory") or {}, corpus.nbytes()
    batch_bytes = 2 * settings["batch_size"] * corpus_bytes // len(corpus)      # anchors and partners
    mode = choose_corpus_mode(memory.get("mode", "auto"), corpus_bytes, device, memory.get("device_gb", 16),
                              memory.get("host_gb", 48), batch_bytes, local_ranks)
    in_memory = None
    if mode == "stream":
        loader = torch.utils.data.DataLoader(
            PairDataset(corpus), sampler=sampler, batch_size=None, num_workers=settings["num_workers"],
            pin_memory=device.type == "cuda", persistent_workers=False,
            prefetch_factor=4 if settings["num_workers"] else None)
    else:                       # the corpus in memory: batches gathered by index, no worker
        in_memory = InMemoryCorpus(corpus, device if mode == "device" else torch.device("cpu"),
                                   pin=mode == "host" and device.type == "cuda")
    if rank == 0:
        print(f"corpus: {len(corpus)} records, {corpus_bytes / 2**30:.2f} GiB as stored, "
              f"{'streamed from the shards' if mode == 'stream' else 'in ' + mode + ' memory'}",
              file=sys.stderr)
    stop = _StopFlag()
    autocast = autocast_for(device)
    sampler_state = sampler.state_dict()
    gen = torch.Generator(device=device)          # reseeded at every step from (seed, step, rank)
    bar = None
    if progress and rank == 0:
        from tqdm import tqdm
        bar = tqdm(total=steps, initial=step, desc=f"pretrain {settings['name']}", unit="step",
                   mininterval=2)
    graphs = uses_cuda_graphs(settings, device)
    started = time.perf_counter()
    window["start"] = started
    try:
        objective.train()
        batches = iter(loader) if in_memory is None else in_memory.batches(sampler)
        while step < steps:
            batch = next(batches)
            x = batch["anchor"].to(device, non_blocking=True)
            partner = batch["partner"].to(device, non_blocking=True) if settings["weights"]["patient"] else None
            if in_memory is not None:
                in_memory.copied()
            gen.manual_seed(seed * 1_000_003 + step * 7919 + rank)
            if graphs:                  # a new step: the last one's graph outputs may be overwritten
                torch.compiler.cudagraph_mark_step_begin()
            losses = train_step(objective, train_module, optimizer, x, partner, gen, autocast,
                                settings["grad_clip"])
            logged[len(pending)].copy_(losses)
            scheduler.step()
            step += 1
            epoch, index = batch["position"]
            sampler_state = {"epoch": int(epoch), "batch": int(index) + 1, "seed": seed}
            pending.append((step - 1, int(epoch), scheduler.get_last_lr()[0]))
            window["samples"] += x.shape[0] * world
            checkpoint_due = step % settings["checkpoint_every"] == 0 or step == steps
            # under DDP the stop decision is taken at the flushes only, by every rank together
            stopping = False
            if checkpoint_due or step % settings["log_every"] == 0 or len(pending) == len(logged) \
                    or (not distributed and stop.signum is not None):
                stopping = flush()
            if checkpoint_due or stopping:
                save_checkpoint()
            if stopping:
                if distributed:
                    dist.barrier()      # rank 0 has written the checkpoint before any rank leaves
                cause = f"signal {stop.signum}" if stop.signum is not None else "a stop signal on another rank"
                print(f"rank {rank}: {cause}: checkpoint written at step {step}; exiting for resubmission",
                      file=sys.stderr)
                sys.exit(EXIT_RESUBMIT)
    finally:
        stop.restore()
        for closing in (metrics_file, bar, tb):     # on every exit: the end, a stop, an error
            if closing is not None:
                closing.close()

    # --- outputs --------------------------------------------------------------------------------------
    summary = {}
    if rank == 0:
        from safetensors.torch import save_file
        save_file({k: v.detach().cpu().contiguous() for k, v in model.encoder_state_dict().items()},
                  str(out / "encoder.safetensors"))
        summary = {
            "format": "ecgfm-encoder/1",
            "name": settings["name"],
            "architecture": arch.to_dict(),
            "preprocessing": {"fs": settings["fs"], "seconds": settings["seconds"],
                              "leads": settings["leads"], "unit": "mV",
                              "crop": "centre crop to a multiple of the patch size (ecgfm.model.fit_length)",
                              "pooling": "mean of the encoder's patch tokens"},
            "objective": {"method": settings["method"], "weights": settings["weights"],
                          "dynamic_weights": bool(settings.get("dynamic_weights")),
                          "loss_balance": settings.get("loss_balance", "none"),
                          "mask_ratio": settings["mask_ratio"], "temperature": settings["temperature"],
                          "recon_target": settings["recon_target"],
                          "reconstruction": settings.get("reconstruction", "mean")},
            "training": {k: settings[k] for k in ("steps", "batch_size", "lr", "weight_decay",
                                                  "warmup_steps", "grad_clip", "seed")},
            "data": {"sources": corpus.sources, "records": len(corpus),
                     "patients": int(corpus.patient.max() + 1),
                     "ptbxl_folds": list(settings.get("include_ptbxl_folds", ()))},
            "provenance": {"commit": git_commit(), "torch": torch.__version__, **(provenance or {})},
            "world_size": world,
            "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        }
        (out / "config.json").write_text(json.dumps(summary, indent=2) + "\n")
    if distributed:
        import torch.distributed as dist
        dist.barrier()
        dist.destroy_process_group()
    return summary
