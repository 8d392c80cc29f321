"""Augmentations that make the contrastive views (batched, on whatever device the batch is on).

Randomness and arithmetic are apart. ``draw`` takes every random number of a set of views from a
``torch.Generator`` in two calls (a uniform table, one row of ``draw_columns(leads)`` per ECG, and
the Gaussian noise), so that a step's views are a function of the seed and the step (a resumed run
sees the same views). The augmentations themselves are pure functions of the signal and their
draws, with no generator and no host work, so that a compiled training step takes them into its
graph, and an eager one makes all of a step's views together (HL's three views took 193
operators made one view at a time; now 3 to draw them and 72 to make them, the sources' concatenation
included: ``benchmarks/pretrain.py --ops``).
Strengths come from the config's ``augment`` block; ``augment`` applies them in a fixed order.
"""
from __future__ import annotations

import math

import torch

# the uniform table's columns, per ECG: four scalars, then four per lead
SHIFT, SCALE, MASK_WIDTH, MASK_START = range(4)
PER_LEAD = ("wander_freq", "wander_phase", "wander_amp", "dropout")
CPU_BLOCK_ROWS = 32        # ECGs augmented at a time on a CPU (augment_batch)


def draw_columns(leads: int) -> int:
    return 4 + len(PER_LEAD) * leads


def lead_columns(u, name: str, leads: int):
    """The [N, leads] block of the uniform table that ``name`` (one of PER_LEAD) reads."""
    start = 4 + PER_LEAD.index(name) * leads
    return u[:, start:start + leads]


def draw(n: int, leads: int, length: int, gen: torch.Generator):
    """Every random number of n augmented ECGs: (uniform [n, draw_columns(leads)], normal [n, leads, length]),
    on the generator's device."""
    uniform = torch.rand((n, draw_columns(leads)), generator=gen, device=gen.device)
    normal = torch.randn((n, leads, length), generator=gen, device=gen.device)
    return uniform, normal


def shift(x, u, max_fraction: float):
    """Circularly shift each ECG in time by up to ``max_fraction`` of its length (a random crop of
    a periodic signal, keeping its length); u [B] in [0, 1) picks the shift, uniform over
    -max .. +max samples."""
    _, leads, t = x.shape
    max_shift = int(t * max_fraction)
    shifts = (u * (2 * max_shift + 1)).long() - max_shift
    idx = (torch.arange(t, device=x.device)[None] - shifts[:, None]) % t      # [B, T]
    return torch.gather(x, 2, idx[:, None, :].expand(-1, leads, -1))


def scale(x, u, low: float, high: float):
    """Multiply each ECG by one factor, low + (high - low) * u, u [B]."""
    return x * (low + (high - low) * u)[:, None, None]


def add_noise(x, normal, std_mv: float):
    """Add white Gaussian noise of standard deviation ``std_mv`` (normal: standard normal, x's shape)."""
    return x + std_mv * normal


def wander(x, u_freq, u_phase, u_amp, max_mv: float, fs: float, max_hz: float = 0.5):
    """Add a slow sinusoid per ECG and lead: frequency below ``max_hz``, any phase, amplitude up to
    ``max_mv``; each u [B, L]."""
    time = torch.arange(x.shape[-1], device=x.device) / fs
    freq, phase, amp = max_hz * u_freq, 2 * math.pi * u_phase, max_mv * u_amp
    return x + amp[..., None] * torch.sin(2 * math.pi * freq[..., None] * time + phase[..., None])


def drop_leads(x, u, p: float):
    """Zero each lead whose u [B, L] is below ``p``; an ECG that would lose every lead keeps its
    first. Arithmetic only: no boolean indexing, hence no host synchronisation."""
    keep = u >= p
    keep[:, 0] |= ~keep.any(1)
    return x * keep[..., None]


def mask_window(x, u_width, u_start, max_fraction: float):
    """Zero one window of up to ``max_fraction`` of the length, per ECG (all leads); u [B] each:
    the width is u_width of the maximum, the start uniform over the positions where it fits."""
    t = x.shape[-1]
    width = (u_width * max_fraction * t).long()
    start = (u_start * (t - width + 1).float()).long()
    pos = torch.arange(t, device=x.device)[None]
    masked = (pos >= start[:, None]) & (pos < (start + width)[:, None])
    return x * (~masked)[:, None, :]


def augment(x, uniform, normal, cfg: dict, fs: float):
    """x [N, L, T] augmented with every augmentation of ``cfg`` (the config's ``augment`` block), each
    ECG with its own row of ``draw``'s tables. Pure: the same inputs give the same views."""
    leads = x.shape[1]
    x = shift(x, uniform[:, SHIFT], cfg["shift_fraction"])
    x = scale(x, uniform[:, SCALE], *cfg["scale_range"])
    x = add_noise(x, normal, cfg["noise_std_mv"])
    x = wander(x, *(lead_columns(uniform, n, leads) for n in PER_LEAD[:3]), cfg["wander_mv"], fs)
    x = drop_leads(x, lead_columns(uniform, "dropout", leads), cfg["lead_dropout"])
    return mask_window(x, uniform[:, MASK_WIDTH], uniform[:, MASK_START], cfg["time_mask_fraction"])


def augment_batch(x, uniform, normal, cfg: dict, fs: float):
    """``augment`` as the trainer calls it, on every view of a step at once: in one pass on a GPU
    (fewest kernels), in blocks of CPU_BLOCK_ROWS ECGs elsewhere. The views are the same either way
    (each ECG's arithmetic is its own; tested): on a CPU, a block whose intermediates stay in cache
    ran about three times faster than one pass over 96 or 768 ECGs (2 cores)."""
    if x.is_cuda or len(x) <= CPU_BLOCK_ROWS:
        return augment(x, uniform, normal, cfg, fs)
    return torch.cat([augment(x[k:k + CPU_BLOCK_ROWS], uniform[k:k + CPU_BLOCK_ROWS], normal[k:k + CPU_BLOCK_ROWS],
                              cfg, fs) for k in range(0, len(x), CPU_BLOCK_ROWS)])
