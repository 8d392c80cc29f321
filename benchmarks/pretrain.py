"""Pretraining throughput: the model-only step, and the real trainer in each input mode.

    python benchmarks/pretrain.py [--batch 256] [--steps 20] [--warmup 5] [--grid]
    python benchmarks/pretrain.py --ops [--models HL_p60_d2_e512,...]
    python benchmarks/pretrain.py --sdpa [--models ...] [--backends auto,flash,efficient,cudnn,math]
    python benchmarks/pretrain.py --trainer [--records 20000] [--patients 15000] [--steps 60]
                                  [--models HL_p60_d2_e512,...] [--modes stream,host,device]
                                  [--workers 10] [--grid] [--peak-tflops 989.5]
                                  [--compile none|default|reduce-overhead|max-autotune]
                                  [--attention auto|flash|efficient|cudnn|math]

Model only: the trainer's own step (``ecgfm.pretrain.train_step``: the step's random numbers,
masked reconstruction + three augmented views through the encoder, InfoNCE, backward, clipping,
AdamW) on synthetic batches already on the device; it measures the model, not the loader. bf16
autocast on CUDA, fp32 on CPU. It is timed as the trainer runs: the first step alone (with
--compile, the compilation: reported apart as "first step s"), the warm-up steps, then the timed
steps back to back with one synchronisation at the end, none per step, so that the trainer's
rate over it measures the input path alone. --grid also tries every cell of the paper's 81-model
grid at the configured batch size and reports its rate and peak memory, or OOM (GPU only).
--sdpa: the model-only rate of each model with each backend of scaled_dot_product_attention
(``pretrain.attention``); a backend the device lacks prints "unsupported".

--trainer: writes synthetic standardized shards of --records records of --patients patients with
the project's own writer (float16, as the standardization writes them), then runs the real
``ecgfm.pretrain.pretrain`` for --steps steps per model and input mode (stream: --workers loader
processes; host: pinned host memory; device: the corpus on the training device) and prints, per
cell: the model-only first step (compilation included) and samples/s, the trainer's samples/s
(steady state: the median of its logged windows after the first third), their ratio, the
analytic FLOPs per sample (``ecgfm.model.training_flops_per_sample``), the model FLOPs
utilization against --peak-tflops (bf16 dense; by default from PEAK_BF16_TFLOPS, keyed on the
exact device name; n/a for another device, and on a CPU) and the peak GPU memory; a cell that
runs out of GPU memory prints OOM and the table goes on. With --grid, every cell of
config.yaml's grid in the first mode of --modes, and the grid's total GPU-hours at the configured
steps. --ops: the operators one eager step dispatches, per section (each is host work on a GPU: a
step of many small kernels is bound by their count), and on a GPU the host synchronisations
inside the step (torch.cuda.set_sync_debug_mode). It runs unchanged on a CPU (small sizes; a test
runs it) and on a GPU.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ecgfm.config import load_config, pretrain_grid, pretrain_settings  # noqa: E402
from ecgfm.model import ATTENTION_BACKENDS, Architecture, ECGFoundationModel, autocast_for  # noqa: E402
from ecgfm.pretrain import PretrainObjective, compile_step, make_optimizer, train_step  # noqa: E402
from ecgfm.results import describe_model  # noqa: E402


def settings_of(config, name: str) -> dict:
    """The pretraining settings of one model of the grid, by name (GL_p60_d2_e512)."""
    m = describe_model(name)
    return pretrain_settings(config, m["method"], m["patch"], m["depth"], m["width"])


def step_parts(settings, batch, device):
    """What one trainer step needs, built as the trainer builds it, on synthetic batches already on
    the device: (objective, the module to call, optimizer, x, partner, generator, autocast)."""
    arch = Architecture(**settings["architecture"])
    objective = PretrainObjective(ECGFoundationModel(arch), settings).to(device)
    optimizer = make_optimizer(objective, settings, device)
    step_module = compile_step(objective, settings.get("compile"))
    x = torch.randn(batch, 12, 2500, device=device) * 0.3
    partner = torch.randn(batch, 12, 2500, device=device) * 0.3
    gen = torch.Generator(device=device).manual_seed(0)
    return objective, step_module, optimizer, x, partner, gen, autocast_for(device)


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(settings, batch, steps, warmup, device) -> dict:
    """The trainer's own step (``ecgfm.pretrain.train_step``) as the trainer runs it: {first_s: the
    first step (compilation included), rate: samples/s of ``steps`` steps back to back after
    ``warmup`` more, synchronised once at the end, peak: GiB}."""
    from ecgfm.pretrain import uses_cuda_graphs
    objective, step_module, optimizer, x, partner, gen, autocast = step_parts(settings, batch, device)
    graphs = uses_cuda_graphs(settings, device)

    def step():
        if graphs:
            torch.compiler.cudagraph_mark_step_begin()
        train_step(objective, step_module, optimizer, x, partner, gen, autocast, settings["grad_clip"])

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    _sync(device)
    t = time.perf_counter()
    step()
    _sync(device)
    first = time.perf_counter() - t
    for _ in range(warmup):
        step()
    _sync(device)
    t = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    elapsed = time.perf_counter() - t
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")
    return {"first_s": first, "rate": batch * steps / elapsed, "peak": peak}


def unless_out_of_memory(run, device):
    """``run()``, or None when it runs out of memory (the GPU's, or on a CPU the host's): that cell's
    tensors and compiled graphs are then released (once the exception and its frames are gone)
    before the next cell."""
    try:
        return run()
    except RuntimeError as error:           # torch.OutOfMemoryError on a GPU; the CPU allocator's own
        if not isinstance(error, torch.OutOfMemoryError) and "can't allocate memory" not in str(error):
            raise
    import gc
    torch._dynamo.reset()
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return None


def count_ops(settings, device) -> dict:
    """Operators dispatched by one eager trainer step, per section of ``train_step``: on a GPU each
    costs host time to dispatch and launch, so a step of small kernels is bound by their count, not
    by arithmetic. The count does not depend on the batch size (a batch of 2 here)."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Counter(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.section, self.counts = None, {}

        def mark(self, section):
            self.section = section
            self.counts.setdefault(section, 0)

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if self.section is not None:
                self.counts[self.section] += 1
            return func(*args, **(kwargs or {}))

    parts = step_parts({**settings, "compile": {"mode": "none"}}, 2, device)
    train_step(*parts, settings["grad_clip"])           # the optimizer's state exists from here on
    with Counter() as counter:
        train_step(*parts, settings["grad_clip"], mark=counter.mark)
    counts = dict(counter.counts)
    if device.type == "cuda":                           # host synchronisations inside the step
        import warnings
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                train_step(*parts, settings["grad_clip"])
            finally:
                torch.cuda.set_sync_debug_mode("default")
        counts["syncs"] = sum("synchroniz" in str(w.message) for w in caught)
    return counts


def ops_table(args, config, device):
    models = args.models.split(",")
    sections = ("draws", "forward", "backward", "clip + optimizer")
    print("operators dispatched per eager step (ecgfm.pretrain.train_step), per section"
          + ("" if device.type == "cuda" else "; on a CPU, AdamW and clipping go parameter by parameter "
             "(fused and foreach on CUDA)"))
    print("| model | " + " | ".join(sections) + " | total | host synchronisations |")
    print("|---|" + "---|" * (len(sections) + 2))
    for name in models:
        counts = count_ops(settings_of(config, name), device)
        print(f"| {name} | " + " | ".join(str(counts[k]) for k in sections)
              + f" | {sum(counts[k] for k in sections)} | {counts.get('syncs', 'n/a')} |")


# bf16 dense tensor-core peak in TFLOP/s (bf16 inputs, fp32 accumulation, no 2:4 sparsity), keyed
# on the exact name torch.cuda.get_device_name reports: an H100 is 989.5 as SXM, 756.5 as PCIe and
# 835.5 as NVL, so a name match ("H100" in the name) would misstate two of the three. NVIDIA's
# datasheets quote these "with sparsity", twice the dense rate (H100 SXM 1,979, PCIe 1,513, NVL
# 1,671; A100 624): the entries are those halved. NVIDIA's own datasheets and whitepapers are not
# among the stored sources this was checked against (2026-12); what was found there:
# - H100 SXM 989.5 and PCIe 756.5: the H100 whitepaper's dense figures (989.4, 756) as quoted on
#   NVIDIA's developer forum ("How to calculate the Tensor Core FP16 performance of H100?",
#   forums.developer.nvidia.com/t/244727: 756 for the PCIe card) and third-party pages
#   (glennklockwood.com/garden/processors/h100: 989.4 dense, 1978.9 sparse); llm.c's
#   llmc/mfu.h derives both from the whitepaper's 756 at 456 tensor cores and 1,620 MHz (SXM:
#   528 cores, 1,830 MHz). NVIDIA's launch blog ("NVIDIA Hopper Architecture In-Depth", Table 3,
#   quoted in forums.developer.nvidia.com/t/218102) gave preliminary 1000 / 800, since revised.
# - H200 989.5: the same GH100 chip and tensor cores as the H100 SXM, only the memory differs
#   (third-party pages: itkb.uw.cz "NVIDIA H200 vs B300", bf16 dense ~989; aiwiki.ai/wiki/
#   nvidia_h200, compute identical to the H100's); a bf16 matrix product measured on an H200 of
#   this project's device machine ran at 769-798 TFLOP/s (its notes), below it.
# - A100 312 (SXM4 and PCIe, 40 and 80 GB alike): NVIDIA's A100 datasheet
#   (nvidia-a100-datasheet-us-nvidia-1758950-r4-web.pdf) as cited by glennklockwood.com/garden/
#   processors/A100: BF16 312 dense, 624 sparse.
# - H100 NVL and H200 NVL 835.5: from memory of NVIDIA's H100 and H200 datasheets (1,671 with
#   sparsity); no stored source gives them, so the benchmark says so when it uses one.
PEAK_BF16_TFLOPS = {
    "NVIDIA H100 80GB HBM3": 989.5,            # SXM5
    "NVIDIA H100 PCIe": 756.5,
    "NVIDIA H100 NVL": 835.5,                  # not checked (above)
    "NVIDIA H200": 989.5,                      # SXM
    "NVIDIA H200 NVL": 835.5,                  # not checked (above)
    "NVIDIA A100-SXM4-80GB": 312.0,
    "NVIDIA A100-SXM4-40GB": 312.0,
    "NVIDIA A100 80GB PCIe": 312.0,
    "NVIDIA A100-PCIE-40GB": 312.0,
}
UNCHECKED_PEAKS = {"NVIDIA H100 NVL", "NVIDIA H200 NVL"}


def peak_tflops(device_name: str | None, given: float | None) -> float | None:
    """--peak-tflops when given, else the exact device's entry of PEAK_BF16_TFLOPS (None: unknown)."""
    return given or PEAK_BF16_TFLOPS.get(device_name or "")


def write_corpus(root: Path, records: int, patients: int, seed: int = 0, shard_size: int = 4096) -> Path:
    """Synthetic standardized shards + manifest, written by the project's ShardWriter."""
    import numpy as np
    import pandas as pd

    from ecgfm.shards import ShardWriter
    rng = np.random.default_rng(seed)
    writer = ShardWriter(root, 12, 2500, shard_size)
    rows = []
    for i in range(records):
        shard, row = writer.add(f"r{i}", (rng.standard_normal((12, 2500), dtype=np.float32) * 0.3))
        rows.append({"record_id": f"r{i}", "patient_id": f"p{i % patients}", "shard": shard, "row": row})
    writer.flush()
    pd.DataFrame(rows).to_parquet(root / "manifest.parquet", index=False)
    return root


def run_trainer(settings, corpus_dir: Path, out: Path, mode: str, device) -> tuple[float, float]:
    """(steady-state samples/s, peak GiB) of the real trainer on ``corpus_dir`` in ``mode``."""
    import pandas as pd

    from ecgfm.pretrain import pretrain
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    pretrain({**settings, "corpus_memory": {"mode": mode}}, [str(corpus_dir)], out, progress=False)
    metrics = pd.read_csv(out / "metrics.csv")
    steady = metrics[metrics["step"] > len(metrics) // 3]["samples_per_s"]
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")
    return float(steady.median()), peak


def trainer_table(args, config, device):
    import tempfile

    from ecgfm.model import training_flops_per_sample
    batch = args.batch or (config["pretrain"]["batch_size"] if device.type == "cuda" else 16)
    modes = args.modes.split(",") if args.modes else (["stream", "host", "device"] if device.type == "cuda"
                                                       else ["stream", "device"])
    models = pretrain_grid(config) if args.grid else args.models.split(",")
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    peak = peak_tflops(device_name, args.peak_tflops)
    steps = args.steps
    unknown = f" (no entry for {device_name!r}: pass --peak-tflops)" if device_name and not peak else \
        " (not checked against NVIDIA's datasheet: PEAK_BF16_TFLOPS)" if device_name in UNCHECKED_PEAKS \
        and not args.peak_tflops else ""
    print(f"trainer: {args.records:,} records of {args.patients:,} patients; batch {batch}; {steps} steps; "
          f"{args.workers} loader workers when streaming; compile {args.compile}; attention {args.attention}; "
          f"peak {peak or 'n/a'} TFLOP/s{unknown}")
    print("| model | mode | first step s | model-only samples/s | trainer samples/s | trainer / model "
          "| GFLOP/sample | MFU | peak GiB |")
    print("|---|---|---|---|---|---|---|---|---|")
    gpu_hours, oom = 0.0, f"OOM at batch {batch}"
    with tempfile.TemporaryDirectory() as tmp:
        corpus = write_corpus(Path(tmp) / "corpus", args.records, args.patients)
        for name in models:
            s = settings_of(config, name)
            s.update(batch_size=batch, steps=steps, warmup_steps=max(1, steps // 10), checkpoint_every=steps,
                     log_every=max(1, steps // 12), num_workers=args.workers, tensorboard=False,
                     compile={"mode": args.compile, "backend": "inductor"}, attention=args.attention)
            flops = training_flops_per_sample(Architecture(**s["architecture"]), s["weights"], s["mask_ratio"])
            torch._dynamo.reset()               # each model compiled afresh, not against Dynamo's cache limit
            alone = unless_out_of_memory(lambda: measure(s, batch, max(5, steps // 3), 3, device), device)
            if alone is None:
                print(f"| {name} | | | {oom} | | | {flops / 1e9:.2f} | | |", flush=True)
                continue
            for mode in (modes[:1] if args.grid else modes):
                ran = unless_out_of_memory(lambda: run_trainer(s, corpus, Path(tmp) / f"{name}-{mode}", mode, device),
                                           device)
                if ran is None:
                    print(f"| {name} | {mode} | {alone['first_s']:.1f} | {alone['rate']:,.0f} | {oom} | | "
                          f"{flops / 1e9:.2f} | | |", flush=True)
                    continue
                rate, mem = ran
                mfu = f"{rate * flops / (peak * 1e12):.1%}" if peak else "n/a"
                memory = f"{mem:.1f}" if device.type == "cuda" else "n/a"
                print(f"| {name} | {mode} | {alone['first_s']:.1f} | {alone['rate']:,.0f} | {rate:,.0f} "
                      f"| {rate / alone['rate']:.2f} | {flops / 1e9:.2f} | {mfu} | {memory} |", flush=True)
                if args.grid:
                    full = config["pretrain"]
                    gpu_hours += full["steps"] * full["batch_size"] / rate / 3600
    if args.grid:
        print(f"grid: {len(models)} models, {gpu_hours:,.1f} GPU-hours of pretraining at "
              f"{config['pretrain']['steps']:,} steps of {config['pretrain']['batch_size']} (cells that ran)")


def sdpa_table(args, config, device):
    """Model-only samples/s of each model with each attention backend (``pretrain.attention``)."""
    batch = args.batch or (config["pretrain"]["batch_size"] if device.type == "cuda" else 8)
    backends = args.backends.split(",")
    print(f"scaled_dot_product_attention backends, model-only samples/s; batch {batch}; "
          f"{args.steps} steps after {args.warmup}; compile {args.compile}")
    print("| model | tokens | " + " | ".join(backends) + " |")
    print("|---|---|" + "---|" * len(backends))
    for name in args.models.split(","):
        s = settings_of(config, name)
        s["compile"] = {"mode": args.compile, "backend": "inductor"}
        cells = []
        for backend in backends:
            torch._dynamo.reset()
            try:
                got = unless_out_of_memory(
                    lambda: measure({**s, "attention": backend}, batch, args.steps, args.warmup, device), device)
            except RuntimeError as error:       # the device has no kernel of that backend for these inputs
                if "No viable backend" not in str(error) and "No available kernel" not in str(error):
                    raise
                cells.append("unsupported")
                continue
            cells.append("OOM" if got is None else f"{got['rate']:,.0f}")
        print(f"| {name} | {Architecture(**s['architecture']).n_patches} | " + " | ".join(cells) + " |", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--grid", action="store_true")
    ap.add_argument("--trainer", action="store_true", help="the real trainer, per input mode")
    ap.add_argument("--ops", action="store_true", help="operators dispatched per eager step, per section")
    ap.add_argument("--records", type=int, default=20000)
    ap.add_argument("--patients", type=int, default=15000)
    ap.add_argument("--models", default="HL_p60_d2_e512,GL_p60_d2_e512,CL_p250_d2_e1024")
    ap.add_argument("--modes", help="stream,host,device (default: all that apply to the device)")
    ap.add_argument("--workers", type=int, default=10)
    ap.add_argument("--peak-tflops", type=float, help="the device's bf16 dense peak (TFLOP/s)")
    ap.add_argument("--compile", default="none", choices=["none", "default", "reduce-overhead", "max-autotune"],
                    help="pretrain.compile's mode for both measurements (--trainer, --sdpa)")
    ap.add_argument("--attention", default="auto", choices=["auto", *ATTENTION_BACKENDS],
                    help="pretrain.attention for --trainer")
    ap.add_argument("--sdpa", action="store_true", help="model-only samples/s per attention backend")
    ap.add_argument("--backends", default="auto," + ",".join(ATTENTION_BACKENDS), help="for --sdpa")
    args = ap.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else \
        f"CPU ({torch.get_num_threads()} threads)"
    config = load_config(Path(__file__).resolve().parents[1] / "config.yaml")
    print(f"device: {name}; torch {torch.__version__}; "
          f"{'bf16 autocast' if device.type == 'cuda' else 'fp32'}")
    if args.ops:
        ops_table(args, config, device)
        return
    if args.trainer:
        trainer_table(args, config, device)
        return
    if args.sdpa:
        sdpa_table(args, config, device)
        return
    batch = args.batch or (config["pretrain"]["batch_size"] if device.type == "cuda" else 64)
    print(f"batch {batch}")
    for method, patch, depth, width in (("HL", 60, 2, 512), ("HL", 250, 2, 1024)):
        s = pretrain_settings(config, method, patch, depth, width)
        got = measure(s, batch, args.steps, args.warmup, device)
        print(f"HL({patch}, {depth}, {width}): {got['rate']:,.0f} samples/s ({args.steps} steps back to back; "
              f"first step {got['first_s']:.2f} s)"
              + (f", peak memory {got['peak']:.1f} GiB" if device.type == "cuda" else ""))
    if args.grid and device.type == "cuda":
        for cell in pretrain_grid(config):
            s = settings_of(config, cell)
            torch._dynamo.reset()
            got = unless_out_of_memory(lambda: measure(s, batch, 3, 1, device), device)
            print(f"{cell}: OOM at batch {batch}" if got is None else
                  f"{cell}: {got['rate']:,.0f} samples/s, peak {got['peak']:.1f} GiB", flush=True)
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
