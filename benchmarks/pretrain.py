"""Pretraining throughput (samples/s) of HL at (60, 2, 512) and (250, 2, 1024), and peak GPU memory.

    python benchmarks/pretrain.py [--batch 256] [--steps 20] [--warmup 5] [--grid]

Times full HL training steps (masked reconstruction + three augmented views through the encoder,
InfoNCE, backward, AdamW) on synthetic standardized batches already on the device, so that it
measures the model and not the loader (benchmarks/loader.py measures that). bf16 autocast on
CUDA, fp32 on CPU. Prints the device. --grid also tries every cell of the paper's 81-model grid at
the configured batch size and reports peak memory or OOM (GPU only).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ecgfm.augment import make_view  # noqa: E402
from ecgfm.config import load_config, pretrain_grid, pretrain_settings  # noqa: E402
from ecgfm.model import Architecture, ECGFoundationModel  # noqa: E402
from ecgfm.pretrain import PretrainObjective  # noqa: E402


def measure(settings, batch, steps, warmup, device):
    arch = Architecture(**settings["architecture"])
    objective = PretrainObjective(ECGFoundationModel(arch), settings).to(device)
    opt = torch.optim.AdamW(objective.parameters(), lr=1e-4)
    x = torch.randn(batch, 12, 2500, device=device) * 0.3
    partner = torch.randn(batch, 12, 2500, device=device) * 0.3
    gen = torch.Generator(device=device).manual_seed(0)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" \
        else torch.autocast("cpu", enabled=False)
    times = []
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for step in range(warmup + steps):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        views = {"a": make_view(x, gen, settings["augment"], 250), "b": make_view(x, gen, settings["augment"], 250),
                 "c": make_view(partner, gen, settings["augment"], 250)}
        noise = torch.rand((batch, arch.n_patches), generator=gen, device=device)
        with autocast:
            loss, _ = objective(x, views, noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if step >= warmup:
            times.append(time.perf_counter() - t)
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")
    return batch / statistics.median(times), peak


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--grid", action="store_true")
    args = ap.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else \
        f"CPU ({torch.get_num_threads()} threads)"
    config = load_config(Path(__file__).resolve().parents[1] / "config.yaml")
    batch = args.batch or (config["pretrain"]["batch_size"] if device.type == "cuda" else 64)
    print(f"device: {name}; torch {torch.__version__}; batch {batch}; "
          f"{'bf16 autocast' if device.type == 'cuda' else 'fp32'}")
    for method, patch, depth, width in (("HL", 60, 2, 512), ("HL", 250, 2, 1024)):
        s = pretrain_settings(config, method, patch, depth, width)
        sps, peak = measure(s, batch, args.steps, args.warmup, device)
        print(f"HL({patch}, {depth}, {width}): {sps:,.0f} samples/s (median step of {args.steps})"
              + (f", peak memory {peak:.1f} GiB" if device.type == "cuda" else ""))
    if args.grid and device.type == "cuda":
        for cell in pretrain_grid(config):
            method, p, d, e = cell.split("_")
            s = pretrain_settings(config, method, int(p[1:]), int(d[1:]), int(e[1:]))
            try:
                sps, peak = measure(s, batch, 3, 1, device)
                print(f"{cell}: {sps:,.0f} samples/s, peak {peak:.1f} GiB")
            except torch.cuda.OutOfMemoryError:
                print(f"{cell}: OOM at batch {batch}")
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
